"""``drasi-host demo`` end to end on the fixture plugins built by the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from drasi_host.demo import run_demo
from drasi_host.errors import ConfigurationError


def test_demo_pipeline_records_what_was_sent(
    fixture_plugins: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = run_demo(events=500, plugin_dir=fixture_plugins["source"].parent, quiet=True)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "500 events from the source plugin, 500 query results" in out
    assert "500 recorded by the reaction plugin" in out


def test_demo_without_plugins_in_the_directory_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="libdrasi_source_fixture"):
        run_demo(events=10, plugin_dir=tmp_path, quiet=True)
    with pytest.raises(ConfigurationError, match="not a directory"):
        run_demo(events=10, plugin_dir=tmp_path / "missing", quiet=True)
