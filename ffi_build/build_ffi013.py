"""cffi out-of-line, API-mode builder for ``drasi_host._ffi013``.

The second declaration set of the host: the Drasi FFI 0.13 generation, read
from ``cdefs/drasi_plugin_0_13.h`` (its one written form) with the blocks
between ``cffi-strip-begin`` / ``cffi-strip-end`` and every preprocessor line
removed, plus the C helpers of ``host013.h`` / ``host013.c``: what must run
without the interpreter lock (the drop function of host-made payloads, the
release of plugin-made envelopes, snapshot row iterators, the push, result
and bootstrap-result callbacks handed to plugins, which feed the channels of
``drasi_host._ffi`` through the entries of ``chanops.h``) and the shims of
the host services plugins call into Python (``callbacks013.cdef``: the config
resolver, the identity provider, the snapshot fetcher).  The 0.13 struct
names collide with the 0.4 ones of ``drasi_host._ffi`` at different layouts,
hence a module of its own.

Build it standalone into a directory of your choice::

    python ffi_build/build_ffi013.py OUT_DIR

which leaves ``OUT_DIR/drasi_host/_ffi013.<abi>.so``.  The package build
compiles it through ``cffi_modules`` in ``setup.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HEADER = ROOT / "cdefs" / "drasi_plugin_0_13.h"
MODULE = "drasi_host._ffi013"

_STRIP_BLOCK = re.compile(r"/\* cffi-strip-begin \*/.*?/\* cffi-strip-end \*/", re.S)


def header_cdef(text: str) -> str:
    """The header as cffi reads it: stripped blocks and preprocessor lines removed."""
    text = _STRIP_BLOCK.sub("", text)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def header_text() -> str:
    """The 0.13 header, as written."""
    return HEADER.read_text(encoding="utf-8")


def _read(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def make_builder() -> FFI:
    """The FFI builder of ``drasi_host._ffi013`` (not yet compiled)."""
    host_h = _read("chanops.h") + "\n" + _read("host013.h")
    callbacks = _read("callbacks013.cdef")
    # The Python callbacks as static C prototypes, so host013.c can call them.
    prototypes = re.sub(r'extern "Python" ', "static ", callbacks)
    builder = FFI()
    builder.cdef(header_cdef(header_text()))
    builder.cdef(host_h + "\nvoid *malloc(size_t);\nvoid free(void *);\n")
    builder.cdef(callbacks)
    builder.set_source(
        MODULE,
        "#define DRASI_HOST_BUILD 1\n"
        '#include "drasi_plugin_0_13.h"\n'
        "#include <stdlib.h>\n"
        "#include <string.h>\n"
        "#include <time.h>\n" + host_h + "\n" + prototypes + "\n" + _read("host013.c"),
        include_dirs=[str(HEADER.parent)],
        extra_compile_args=[
            "-std=c11",
            "-O2",
            "-Wall",
            "-D_POSIX_C_SOURCE=200809L",
            "-Werror=incompatible-pointer-types",
        ],
    )
    return builder


ffibuilder = make_builder()


def build(out_dir: Path | str, *, verbose: bool = False) -> Path:
    """Compile the module into ``out_dir``; returns the path of the extension."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return Path(make_builder().compile(tmpdir=str(out), verbose=verbose))


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else ".", verbose=True))
