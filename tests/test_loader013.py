"""Loading FFI 0.13 plugins beside 0.4 ones: dispatch on the metadata before
init, the 0.13 load sequence (five factory arrays, log-level pushdown, the
registration block freed), factories behind the same proxy classes, and the
ABI of each plugin in ``drasi-host inspect``."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cffi
import pytest

from drasi_host import (
    SUPPORTED_SDK_VERSIONS,
    BootstrapPluginProxy,
    CallbackContext,
    DrasiHostError,
    IdentityProviderPluginProxy,
    IncompatiblePluginError,
    PluginLoader,
    PluginLoaderConfig,
    ReactionPluginProxy,
    SecretStorePluginProxy,
    SourcePluginProxy,
    _abi013,
)
from drasi_host.cli import main
from drasi_host.loader import PLUGIN_LOGGER, load_plugin

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")

_stats_ffi = cffi.FFI()
_stats_ffi.cdef(
    "\n".join(
        line
        for line in (ROOT / "plugins_fixture" / "v013" / "stats013.h").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
)


def stats(path: Path) -> dict[str, int]:
    """The counters of the loaded 0.13 fixture library at ``path``."""
    lib: Any = _stats_ffi.dlopen(str(path))
    out = _stats_ffi.new("DrasiFixture013Stats *")
    lib.drasi_fixture013_stats(out)
    return {k: int(getattr(out, k)) for k, _ in _stats_ffi.typeof("DrasiFixture013Stats").fields}


@pytest.fixture(scope="module")
def built013(tmp_path_factory: pytest.TempPathFactory, fixture_builder: Any) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("loader013")
    built: dict[str, Path] = fixture_builder.build_fixtures_013(out)
    return built


def fresh_dir(directory: Path, *libraries: Path) -> Path:
    """A directory holding private copies of ``libraries`` (each copy is a
    library instance of its own, with its own counters)."""
    directory.mkdir(parents=True, exist_ok=True)
    for library in libraries:
        shutil.copy2(library, directory / library.name)
    return directory


@pytest.fixture
def mixed_dir(tmp_path: Path, built013: dict[str, Path], fixture_plugins: dict[str, Path]) -> Path:
    """0.4 and 0.13 fixture plugins in one directory."""
    return fresh_dir(
        tmp_path / "plugins",
        fixture_plugins["source"],
        fixture_plugins["reaction"],
        built013["v013_all"],
        built013["v013_services"],
    )


@pytest.fixture
def plugin_logger_level() -> Iterator[logging.Logger]:
    logger = logging.getLogger(PLUGIN_LOGGER)
    saved = logger.level
    yield logger
    logger.setLevel(saved)


def test_supported_versions() -> None:
    assert SUPPORTED_SDK_VERSIONS == ("0.4", "0.13")


def test_one_loader_loads_both_generations(
    mixed_dir: Path, fixture_plugins: dict[str, Path], built013: dict[str, Path]
) -> None:
    loader = PluginLoader(PluginLoaderConfig(plugin_dir=mixed_dir))
    plugins = loader.load_all(CallbackContext("mixed"))
    by_name = {p.name: p for p in plugins}
    try:
        assert set(by_name) == {p.name for p in mixed_dir.iterdir()}
        v04 = by_name[fixture_plugins["source"].name]
        assert v04.abi_version == "0.4"
        assert by_name[fixture_plugins["reaction"].name].abi_version == "0.4"
        assert v04.identity_provider_plugins == [] and v04.secret_store_plugins == []
        assert v04.payload_format == "application/json"

        every = by_name[built013["v013_all"].name]
        assert every.abi_version == "0.13"
        assert every.payload_format is None
        assert every.metadata is not None and every.metadata.sdk_version == "0.13.0"
        assert "abi=0.13" in repr(every)
        groups: list[tuple[list[Any], type[Any], str]] = [
            (every.source_plugins, SourcePluginProxy, "fixture013"),
            (every.reaction_plugins, ReactionPluginProxy, "fixture013-reaction"),
            (every.bootstrap_plugins, BootstrapPluginProxy, "fixture013-bootstrap"),
            (every.identity_provider_plugins, IdentityProviderPluginProxy, "fixture013-identity"),
            (every.secret_store_plugins, SecretStorePluginProxy, "fixture013-secrets"),
        ]
        for factories, cls, kind in groups:
            assert len(factories) == 1
            (factory,) = factories
            assert type(factory) is cls
            assert factory.abi_version == "0.13"
            assert factory.kind == kind
            assert factory.config_version == "1.0.0"
            assert factory.config_schema_name.startswith("fixture013.")
            assert factory.config_schema_json()["type"] == "object"
        assert v04.source_plugins[0].abi_version == "0.4"

        services = by_name[built013["v013_services"].name]
        assert [f.kind for f in services.identity_provider_plugins] == ["fixture013-identity"]
        assert [f.kind for f in services.secret_store_plugins] == ["fixture013-secrets"]
        assert services.source_plugins == services.reaction_plugins == []
    finally:
        for plugin in plugins:
            plugin.close()
    # every 0.13 factory was dropped exactly once
    assert stats(mixed_dir / built013["v013_all"].name)["factories_dropped"] == 5
    assert stats(mixed_dir / built013["v013_services"].name)["factories_dropped"] == 2
    assert all(f.released for p in plugins for f in p.source_plugins + p.secret_store_plugins)


@pytest.mark.parametrize(
    ("level", "expected"),
    [(logging.WARNING, 2), (logging.DEBUG, 4), (logging.INFO, 3), (5, 5), (logging.CRITICAL, 1)],
)
def test_log_level_pushed_down_at_load(
    tmp_path: Path,
    built013: dict[str, Path],
    plugin_logger_level: logging.Logger,
    level: int,
    expected: int,
) -> None:
    plugin_logger_level.setLevel(level)
    path = fresh_dir(tmp_path, built013["v013_source"]) / built013["v013_source"].name
    with load_plugin(path, CallbackContext("t")) as plugin:
        assert plugin.abi_version == "0.13"
        assert stats(path)["log_level"] == expected


def test_log_filter_mapping() -> None:
    assert [_abi013.log_filter(v) for v in (0, 5, 10, 15, 20, 30, 40, 50)] == [
        5,
        5,
        4,
        4,
        3,
        2,
        1,
        1,
    ]


def test_other_versions_refused_before_init(tmp_path: Path, built013: dict[str, Path]) -> None:
    path = fresh_dir(tmp_path, built013["v013_badsdk"]) / built013["v013_badsdk"].name
    with pytest.raises(IncompatiblePluginError) as info:
        load_plugin(path, CallbackContext("t"))
    message = str(info.value)
    for text in ("0.12.0", "0.4", "0.13", str(path)):
        assert text in message
    assert info.value.path == path
    # drasi_plugin_init never ran: it would have marked the level as never set (-1)
    assert stats(path)["log_level"] == 0
    assert stats(path)["factories_dropped"] == 0


@pytest.mark.anyio
async def test_creating_013_components_is_refused_unsent(
    tmp_path: Path, built013: dict[str, Path]
) -> None:
    path = fresh_dir(tmp_path, built013["v013_all"]) / built013["v013_all"].name
    async with load_plugin(path, CallbackContext("t")) as plugin:
        with pytest.raises(DrasiHostError, match=r"FFI 0\.13") as info:
            await plugin.source_plugins[0].create_source("s1", {})
        assert info.value.plugin == path.name and info.value.component_id == "s1"
        with pytest.raises(DrasiHostError, match=r"FFI 0\.13"):
            await plugin.reaction_plugins[0].create_reaction("r1", ["q"], {})
        with pytest.raises(DrasiHostError, match=r"FFI 0\.13"):
            await plugin.bootstrap_plugins[0].create_bootstrap_provider({})
    assert stats(path)["objects_created"] == 0


def test_inspect_shows_the_abi(
    mixed_dir: Path,
    fixture_plugins: dict[str, Path],
    built013: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["inspect", str(mixed_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("  abi 0.4\n") == 2 and out.count("  abi 0.13\n") == 2
    assert "identity  fixture013-identity" in out
    assert "secrets   fixture013-secrets" in out
    assert "payload format: MessagePack (fixed by the ABI)" in out

    assert main(["inspect", "--json", str(mixed_dir)]) == 0
    report = {Path(e["path"]).name: e for e in json.loads(capsys.readouterr().out)}
    assert report[fixture_plugins["source"].name]["abi_version"] == "0.4"
    assert report[fixture_plugins["source"].name]["identity_providers"] == []
    every = report[built013["v013_all"].name]
    assert every["abi_version"] == "0.13"
    assert every["secret_stores"] == [
        {
            "kind": "fixture013-secrets",
            "config_version": "1.0.0",
            "config_schema_name": "fixture013.ServiceConfig",
        }
    ]


def test_inspect_names_supported_versions_for_a_refused_plugin(
    tmp_path: Path, built013: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    directory = fresh_dir(tmp_path / "p", built013["v013_badsdk"], built013["v013_reaction"])
    assert main(["inspect", str(directory)]) == 1
    captured = capsys.readouterr()
    assert "abi 0.13" in captured.out
    assert "FAILED (IncompatiblePluginError)" in captured.err
    assert "0.12.0" in captured.err and "0.4, 0.13" in captured.err
