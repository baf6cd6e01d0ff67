"""Every ```python block of README.md and docs/*.md runs.

Each block is run on its own, as a complete program, in a fresh interpreter
whose working directory holds what the documentation tells a reader to have:

* ``./plugins``: the example plugins of both generations: the 0.4 fixture
  source, reaction and bootstrap libraries (which ``drasi-host demo`` also
  builds) and the 0.13 fixture source, reaction, bootstrap and services
  libraries;
* every plugin written in C in the documentation (a ```c block exporting
  ``drasi_plugin_init``), compiled under the library name its build command
  (``-o libdrasi_….so``) gives.

Blocks in other languages (``sh``, ``c``, ``json``, plain) are not run.  A
block that exits with a non-zero status, or takes longer than
:data:`TIMEOUT` seconds, fails with its output.

Every ```c block that includes ``drasi_plugin_0_13.h`` is a complete
translation unit and must compile against ``cdefs/`` without a warning.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 120
#: The libraries of ./plugins (fixture name in plugins_fixture/build.py).
EXAMPLE_PLUGINS = ("source", "reaction", "bootstrap")
#: The 0.13 libraries of ./plugins (``FIXTURES_013`` of plugins_fixture/build.py).
EXAMPLE_PLUGINS_013 = ("v013_source", "v013_reaction", "v013_bootstrap", "v013_services")

_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_OUTPUT = re.compile(r"-o\s+(libdrasi_[\w.-]+?)\.(?:so|dylib)\b")


def _blocks(language: str) -> list[tuple[Path, int, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            if match.group(1) == language:
                line = text.count("\n", 0, match.start()) + 1
                found.append((path, line, match.group(2)))
    return found


def _c_plugins() -> list[tuple[str, str]]:
    """(library stem, C source) of each documented C plugin."""
    plugins = []
    for path, _line, code in _blocks("c"):
        if "drasi_plugin_init" not in code:
            continue
        names = _OUTPUT.findall(path.read_text(encoding="utf-8"))
        assert names, f"{path.name}: a C plugin without a build command naming its library"
        plugins.append((names[0], code))
    return plugins


PYTHON_BLOCKS = _blocks("python")


@pytest.fixture(scope="module")
def docs_cwd(
    tmp_path_factory: pytest.TempPathFactory,
    fixture_plugins: dict[str, Path],
    fixture_builder: Any,
) -> Path:
    cwd = tmp_path_factory.mktemp("docs")
    plugins = cwd / "plugins"
    plugins.mkdir()
    for name in EXAMPLE_PLUGINS:
        shutil.copy2(fixture_plugins[name], plugins / fixture_plugins[name].name)
    built013 = fixture_builder.build_fixtures_013(
        tmp_path_factory.mktemp("plugins013"), only=EXAMPLE_PLUGINS_013
    )
    for path in built013.values():
        shutil.copy2(path, plugins / path.name)
    cc = shlex.split(os.environ.get("CC") or "cc")
    suffix = ".dylib" if sys.platform == "darwin" else ".so"
    for stem, code in _c_plugins():
        source = cwd / f"{stem}.c"
        source.write_text(code, encoding="utf-8")
        subprocess.run(
            [
                *cc,
                "-std=c11",
                "-O2",
                "-Wall",
                "-fPIC",
                "-shared",
                "-pthread",
                f"-I{ROOT / 'cdefs'}",
                str(source),
                "-o",
                str(cwd / f"{stem}{suffix}"),
            ],
            check=True,
            capture_output=True,
        )
    return cwd


C_013_BLOCKS = [b for b in _blocks("c") if '#include "drasi_plugin_0_13.h"' in b[2]]


@pytest.mark.parametrize(
    ("path", "line", "code"),
    [pytest.param(*b, id=f"{b[0].name}:{b[1]}") for b in C_013_BLOCKS],
)
def test_013_c_block_compiles(path: Path, line: int, code: str, tmp_path: Path) -> None:
    source = tmp_path / "block.c"
    source.write_text(code, encoding="utf-8")
    cc = shlex.split(os.environ.get("CC") or "cc")
    flags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", "-c"]
    proc = subprocess.run(
        [*cc, *flags, f"-I{ROOT / 'cdefs'}", str(source), "-o", str(tmp_path / "block.o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"{path.name}:{line} does not compile\n{proc.stderr}"


def test_docs_have_013_c_blocks() -> None:
    assert len(C_013_BLOCKS) >= 2


def test_docs_have_python_blocks() -> None:
    assert len(PYTHON_BLOCKS) >= 10


@pytest.mark.parametrize(
    ("path", "line", "code"),
    [pytest.param(*b, id=f"{b[0].name}:{b[1]}") for b in PYTHON_BLOCKS],
)
def test_python_block_runs(path: Path, line: int, code: str, docs_cwd: Path) -> None:
    env: dict[str, Any] = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error::RuntimeWarning", "-c", code],
            cwd=docs_cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{path.name}:{line}: still running after {TIMEOUT} s\n{exc.stdout}")
    assert proc.returncode == 0, (
        f"{path.name}:{line} exited with {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    )
