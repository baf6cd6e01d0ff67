"""cffi out-of-line, API-mode builder for ``drasi_host._ffi``.

The declarations come from the ABI header ``cdefs/drasi_plugin.h`` (the one
written form of the contract) with its preprocessor lines removed, followed
by the host's own helpers (``host.h``) and the Python callbacks the helpers
call (``callbacks.cdef``).  The compiled module contains ``host.c``: channels
that move events and results between plugin threads and Python without the
GIL, and the shims every plugin-facing callback goes through.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADER = ROOT / "cdefs" / "drasi_plugin.h"

_STRIP_BLOCK = re.compile(r"/\* cffi-strip-begin \*/.*?/\* cffi-strip-end \*/", re.S)


def header_cdef(text: str) -> str:
    """The header as cffi reads it: stripped blocks and preprocessor lines removed."""
    text = _STRIP_BLOCK.sub("", text)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _read(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def make_builder() -> FFI:
    callbacks = _read("callbacks.cdef")
    forward = re.sub(r'extern "Python" ', "static ", callbacks)
    host_h = _read("host.h")
    builder = FFI()
    builder.cdef(header_cdef(HEADER.read_text(encoding="utf-8")))
    builder.cdef(host_h + "\nvoid *malloc(size_t);\nvoid free(void *);\n")
    builder.cdef(callbacks)
    builder.cdef(header_cdef(_read("memstore.h")))
    builder.set_source(
        "drasi_host._ffi",
        "#define DRASI_HOST_BUILD 1\n"
        '#include "drasi_plugin.h"\n'
        "#include <stdlib.h>\n"
        + host_h
        + "\n"
        + forward
        + "\n"
        + _read("host.c")
        + "\n"
        + _read("memstore.c"),
        include_dirs=[str(HEADER.parent), str(HERE)],
        extra_compile_args=["-std=c11", "-O2", "-pthread", "-D_POSIX_C_SOURCE=200809L"],
        extra_link_args=["-pthread"],
        libraries=["dl"] if sys.platform.startswith("linux") else [],
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
