"""Build script.

Compiles the cffi extensions ``drasi_host._ffi`` (the 0.4 ABI, from
``ffi_build/build_ffi.py``) and ``drasi_host._ffi013`` (the FFI 0.13 ABI, from
``ffi_build/build_ffi013.py``), out-of-line and in API mode, and the small
C extension ``drasi_host._jsonvalues`` (``ffi_build/jsonvalues.c``, the
payload encoders' quick JSON value test), all for the stable ABI: one
``cp310-abi3`` wheel serves CPython 3.10 and later.  It also bundles
into the package the ABI headers of both generations (``drasi_host/include``)
and the C sources of the demo plugins (``drasi_host/_demo``), so that
``drasi-host demo`` can compile them on a machine that only has the wheel and
a C compiler.  Only the files the demo fixtures name in
``plugins_fixture/build.py`` are bundled, never the other test plugins.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT / "plugins_fixture"

#: The fixtures ``drasi-host demo`` builds (``drasi_host.demo.DEMO_FIXTURES``).
DEMO_FIXTURES = ("source", "reaction")


def _fixture_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("drasi_fixture_build", FIXTURES / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def demo_files() -> list[Path]:
    """The demo fixtures' C sources, the fixture headers and ``build.py``."""
    builder = _fixture_builder()
    names = {"build.py", *(p.name for p in FIXTURES.glob("*.h"))}
    for fixture in DEMO_FIXTURES:
        names.update(builder.FIXTURES[fixture].sources)
    return [FIXTURES / name for name in sorted(names)]


class BuildPyWithDemo(build_py):
    def run(self) -> None:
        super().run()
        package = Path(self.build_lib) / "drasi_host"
        header = ROOT / "cdefs" / "drasi_plugin.h"
        for directory in (package / "include", package / "_demo" / "cdefs"):
            directory.mkdir(parents=True, exist_ok=True)
            shutil.copy2(header, directory / header.name)
        header013 = ROOT / "cdefs" / "drasi_plugin_0_13.h"
        shutil.copy2(header013, package / "include" / header013.name)
        fixtures = package / "_demo" / "plugins_fixture"
        fixtures.mkdir(parents=True, exist_ok=True)
        for source in demo_files():
            shutil.copy2(source, fixtures / source.name)


setup(
    cffi_modules=["ffi_build/build_ffi.py:ffibuilder", "ffi_build/build_ffi013.py:ffibuilder"],
    ext_modules=[
        # The payload encoders' quick JSON value test (stable ABI as well).
        Extension(
            "drasi_host._jsonvalues",
            ["ffi_build/jsonvalues.c"],
            py_limited_api=True,
            define_macros=[("Py_LIMITED_API", "0x030A0000")],
        )
    ],
    cmdclass={"build_py": BuildPyWithDemo},
    # cffi compiles the module with Py_LIMITED_API; tag the wheel to match.
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
