"""The native baseline of ``bench/bench_abi013.py`` (``native013``, a C host
consuming a 0.13 source on its push thread) and the fixture source's
``"alloc": "rustlike"`` mode it measures."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def native_build(tmp_path_factory: pytest.TempPathFactory, fixture_builder: Any) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("native013")
    built: dict[str, Path] = fixture_builder.build_fixtures_013(
        out, only=["v013_source", "native013"]
    )
    return built


def _run(built: dict[str, Path], n: int, *extra: str, valgrind: bool = False) -> dict[str, str]:
    cmd = [str(built["native013"]), str(built["v013_source"]), str(n), *extra]
    if valgrind:
        cmd = ["valgrind", "-q", "--error-exitcode=3", "--leak-check=no", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(re.findall(r"(\w+)=(\S+)", proc.stdout))


def test_native_consumer_routes_every_event(native_build: dict[str, Path]) -> None:
    out = _run(native_build, 1000)
    assert out["events"] == "1000"
    assert out["routed"] == "1000"  # every change of the cycle names an element
    assert int(out["bytes"]) > 1000 * 100
    assert float(out["rate"]) > 0


def test_rustlike_mode_sends_the_same_events(native_build: dict[str, Path]) -> None:
    plain = _run(native_build, 400)
    rustlike = _run(native_build, 400, ', "alloc": "rustlike"')
    for key in ("events", "bytes", "routed", "check"):
        assert rustlike[key] == plain[key], key


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_native_consumer_and_rustlike_mode_under_memcheck(native_build: dict[str, Path]) -> None:
    out = _run(native_build, 300, ', "alloc": "rustlike"', valgrind=True)
    assert out["events"] == "300"


def test_native_consumer_refuses_a_04_library(
    native_build: dict[str, Path], fixture_plugins: dict[str, Path]
) -> None:
    proc = subprocess.run(
        [str(native_build["native013"]), str(fixture_plugins["source"]), "10"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "not an FFI 0.13 plugin" in proc.stderr
