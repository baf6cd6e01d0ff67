"""C helper libraries of the channel tests (``tests/c/*.c``): compiled with
strict warnings against ``cdefs/``, opened in cffi ABI mode with the
declarations between the source's ``cdef-begin`` / ``cdef-end`` markers plus
the prototypes the test adds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import cffi

CDEFS = Path(__file__).resolve().parents[1] / "cdefs"


class CHelper:
    """A compiled helper library, opened in ABI mode."""

    def __init__(self, source: Path, path: Path, prototypes: str) -> None:
        text = source.read_text(encoding="utf-8")
        match = re.search(r"/\* cdef-begin \*/(.*?)/\* cdef-end \*/", text, re.S)
        assert match is not None
        self.ffi = cffi.FFI()
        self.ffi.cdef(match.group(1) + prototypes)
        self.lib: Any = self.ffi.dlopen(str(path))


def build_c_helper(source: Path, out_dir: Path, prototypes: str) -> CHelper:
    """Compile ``source`` into a shared library in ``out_dir`` and open it."""
    out = out_dir / f"lib{source.stem}.so"
    cmd = [
        "cc", "-std=c11", "-O1", "-g", "-fPIC", "-shared", "-pthread",
        "-Wall", "-Wextra", "-Werror", "-I", str(CDEFS),
        str(source), "-o", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return CHelper(source, out, prototypes)
