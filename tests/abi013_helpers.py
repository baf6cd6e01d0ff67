"""Shared pieces of the FFI 0.13 tests: the 0.13 cffi builder loaded from
``ffi_build/build_ffi013.py``, the compiled ``drasi_host._ffi013`` module (built
into a temporary directory once per session), and the 0.13 fixture builder."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADER_013 = ROOT / "cdefs" / "drasi_plugin_0_13.h"


def load_path(name: str, path: Path) -> ModuleType:
    """Import the Python file ``path`` as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build_ffi013_module() -> ModuleType:
    """``ffi_build/build_ffi013.py`` as a module."""
    return load_path("drasi_build_ffi013", ROOT / "ffi_build" / "build_ffi013.py")


def compile_ffi013(out_dir: Path) -> Any:
    """Compile ``drasi_host._ffi013`` into ``out_dir`` and import it."""
    built = build_ffi013_module().build(out_dir)
    loader = importlib.machinery.ExtensionFileLoader("drasi_host._ffi013", str(built))
    spec = importlib.util.spec_from_file_location("drasi_host._ffi013", built, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
