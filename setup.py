"""Build script.

Compiles the cffi extension ``drasi_host._ffi`` (out-of-line, API mode, from
``ffi_build/build_ffi.py``) and bundles the C sources of the demo plugins
(``plugins_fixture/`` and the ABI header) into the package, so that
``drasi-host demo`` can compile them on a machine that only has the wheel.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithDemo(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "drasi_host" / "_demo"
        fixtures = target / "plugins_fixture"
        fixtures.mkdir(parents=True, exist_ok=True)
        (target / "cdefs").mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "cdefs" / "drasi_plugin.h", target / "cdefs" / "drasi_plugin.h")
        include = Path(self.build_lib) / "drasi_host" / "include"
        include.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "cdefs" / "drasi_plugin.h", include / "drasi_plugin.h")
        for pattern in ("*.c", "*.h", "build.py"):
            for source in sorted((ROOT / "plugins_fixture").glob(pattern)):
                shutil.copy2(source, fixtures / source.name)


setup(
    cffi_modules=["ffi_build/build_ffi.py:ffibuilder"],
    cmdclass={"build_py": BuildPyWithDemo},
)
