"""``drasi-host inspect``: in-process through ``main`` and once as a real
``python -m drasi_host.cli`` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import drasi_host
from drasi_host import HOST_SDK_VERSION, host_target_triple
from drasi_host.cli import main


def plugin_dir(directory: Path, fixture_plugins: dict[str, Path], names: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = fixture_plugins[name]
        (directory / src.name).symlink_to(src)
    (directory / "README.txt").write_text("not a plugin\n")
    return directory


GOOD = ["source", "multi", "opaque", "nometa"]


def test_inspect_text(
    fixture_plugins: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = plugin_dir(tmp_path / "plugins", fixture_plugins, GOOD)
    assert main(["inspect", str(directory)]) == 0
    out = capsys.readouterr().out
    for name in GOOD:
        assert fixture_plugins[name].name in out
    assert f"target {host_target_triple()}" in out
    assert "sdk 0.4." in out
    assert "payload format: application/json" in out
    assert "payload format: opaque (none exported)" in out
    assert "metadata: none exported" in out  # nometa
    for kind in ("multi-a", "multi-b", "multi-r1", "multi-r3", "multi-b2", "opaque-reaction"):
        assert kind in out
    assert "source.fixture.FixtureSourceConfig" in out
    assert "README" not in out


def test_inspect_json(
    fixture_plugins: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = plugin_dir(tmp_path / "plugins", fixture_plugins, GOOD)
    # a directory and a single file may be mixed
    assert main(["inspect", "--json", str(directory), str(fixture_plugins["reaction"])]) == 0
    report = json.loads(capsys.readouterr().out)
    by_name = {Path(entry["path"]).name: entry for entry in report}
    assert set(by_name) == {fixture_plugins[n].name for n in [*GOOD, "reaction"]}
    multi = by_name[fixture_plugins["multi"].name]
    assert [f["kind"] for f in multi["sources"]] == ["multi-a", "multi-b"]
    assert [f["kind"] for f in multi["reactions"]] == ["multi-r1", "multi-r2", "multi-r3"]
    assert [f["kind"] for f in multi["bootstrap_providers"]] == ["multi-b1", "multi-b2"]
    assert multi["sources"][0] == {
        "kind": "multi-a",
        "config_version": "1.0.0",
        "config_schema_name": "source.multi_a.MultiASourceConfig",
    }
    assert multi["payload_format"] == "application/json"
    assert multi["metadata"]["target_triple"] == host_target_triple()
    assert multi["metadata"]["sdk_version"].split(".")[:2] == HOST_SDK_VERSION.split(".")[:2]
    assert by_name[fixture_plugins["opaque"].name]["payload_format"] is None
    assert by_name[fixture_plugins["nometa"].name]["metadata"] is None
    assert by_name[fixture_plugins["reaction"].name]["reactions"][0]["kind"] == "fixture"


def test_inspect_reports_bad_plugins(
    fixture_plugins: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = plugin_dir(tmp_path / "plugins", fixture_plugins, ["source", "badsdk", "noinit"])
    assert main(["inspect", str(directory)]) == 1
    captured = capsys.readouterr()
    assert fixture_plugins["source"].name in captured.out  # the good one is still shown
    assert "FAILED (IncompatiblePluginError)" in captured.err
    assert "0.3.1" in captured.err
    assert "missing required symbol drasi_plugin_init" in captured.err

    assert main(["inspect", "--json", str(directory)]) == 1
    report = json.loads(capsys.readouterr().out)
    errors = {Path(e["path"]).name: e for e in report if "error" in e}
    assert set(errors) == {fixture_plugins["badsdk"].name, fixture_plugins["noinit"].name}
    assert errors[fixture_plugins["badsdk"].name]["error_type"] == "IncompatiblePluginError"
    assert "0.3.1" in errors[fixture_plugins["badsdk"].name]["error"]
    assert errors[fixture_plugins["noinit"].name]["error_type"] == "PluginLoadError"


def test_inspect_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path)]) == 1
    assert "no plugin libraries found" in capsys.readouterr().err


def test_inspect_subprocess(fixture_plugins: dict[str, Path], tmp_path: Path) -> None:
    directory = plugin_dir(tmp_path / "plugins", fixture_plugins, ["source", "multi"])
    package_root = Path(drasi_host.__file__).resolve().parents[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(package_root), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-m", "drasi_host.cli", "inspect", str(directory), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [Path(e["path"]).name for e in report] == sorted(
        fixture_plugins[n].name for n in ("source", "multi")
    )
    assert {f["kind"] for e in report for f in e["sources"]} == {"multi-a", "multi-b", "fixture"}
    assert all(e["metadata"]["target_triple"] == host_target_triple() for e in report)
