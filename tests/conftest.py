"""Shared fixtures: the fixture plugins, compiled from ``plugins_fixture/``
with this machine's C compiler once per test session, and helpers to load
them and read their test counters."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = ROOT / "plugins_fixture"

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("drasi_fixture_build", FIXTURE_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fixture_builder() -> Any:
    return _load_builder()


@pytest.fixture(scope="session")
def fixture_plugins(
    tmp_path_factory: pytest.TempPathFactory, fixture_builder: Any
) -> dict[str, Path]:
    """Every fixture plugin, built from source: name -> library path."""
    out = os.environ.get("DRASI_FIXTURE_BUILD_DIR")
    out_dir = Path(out) if out else tmp_path_factory.mktemp("plugins")
    built: dict[str, Path] = fixture_builder.build_fixtures(out_dir)
    return built


@pytest.fixture(scope="session")
def fixture_stats_reader(fixture_builder: Any) -> Callable[[Path], dict[str, int]]:
    """Reads ``drasi_fixture_stats`` of a loaded fixture library."""
    import cffi

    ffi = cffi.FFI()
    header = (FIXTURE_DIR / "fixture_stats.h").read_text()
    ffi.cdef("\n".join(line for line in header.splitlines() if not line.lstrip().startswith("#")))
    libs: dict[Path, Any] = {}

    def read(path: Path) -> dict[str, int]:
        lib = libs.get(path)
        if lib is None:
            lib = libs[path] = ffi.dlopen(str(path))
        out = ffi.new("DrasiFixtureStats *")
        lib.drasi_fixture_stats(out)
        return {name: int(getattr(out, name)) for name, _ in ffi.typeof("DrasiFixtureStats").fields}

    return read


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every anyio test runs under asyncio and trio unless it chooses."""
    return str(request.param)


@pytest.fixture
def callbacks() -> Iterator[Any]:
    from drasi_host.logs import CallbackContext

    yield CallbackContext(instance_id="test-instance")


@pytest.fixture(scope="session")
def fixture_plugins_013(
    tmp_path_factory: pytest.TempPathFactory, fixture_builder: Any
) -> dict[str, Path]:
    """Every FFI 0.13 fixture plugin (``plugins_fixture/v013``), built from
    source: name -> library path."""
    out = os.environ.get("DRASI_FIXTURE_BUILD_DIR")
    out_dir = Path(out) / "v013" if out else tmp_path_factory.mktemp("plugins013")
    built: dict[str, Path] = fixture_builder.build_fixtures_013(out_dir)
    return built


@pytest.fixture(params=["0.4", "0.13"])
def gen(
    request: pytest.FixtureRequest,
    fixture_plugins: dict[str, Path],
    fixture_plugins_013: dict[str, Path],
    fixture_stats_reader: Callable[[Path], dict[str, int]],
) -> Any:
    """One ABI generation's fixture plugins and what they are expected to do
    (a :class:`generations.Gen`); tests taking it run for 0.4 and 0.13."""
    from generations import make_gen

    return make_gen(str(request.param), fixture_plugins, fixture_plugins_013, fixture_stats_reader)
