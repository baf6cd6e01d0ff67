"""Factory proxies (``SourcePluginProxy`` and friends) against real plugins:
what they report, the schema string's ownership, hostile schemas, and the
``create_*`` calls refusing with what the plugin logged."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from drasi_host import (
    BootstrapPluginProxy,
    CallbackContext,
    DrasiHostError,
    PluginCallError,
    PluginProtocolError,
    ReactionPluginProxy,
    SourcePluginProxy,
)
from drasi_host.loader import load_plugin

Stats = Callable[[Path], dict[str, int]]


def private_copy(src: Path, directory: Path) -> Path:
    """A copy of a built library: loading it gives a fresh library instance."""
    directory.mkdir(parents=True, exist_ok=True)
    dst = directory / src.name
    shutil.copy2(src, dst)
    return dst


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]


def c_heap_in_use() -> int | None:
    """Bytes allocated on the C heap (glibc ``mallinfo2``), or None elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    fn = getattr(libc, "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = _MallInfo2
    info = fn()
    return int(info.uordblks + info.hblkhd)


def test_factory_properties(fixture_plugins: dict[str, Path]) -> None:
    with load_plugin(fixture_plugins["multi"], CallbackContext("t")) as plugin:
        a, b = plugin.source_plugins
        assert isinstance(a, SourcePluginProxy)
        assert (a.kind, a.config_version, a.config_schema_name) == (
            "multi-a",
            "1.0.0",
            "source.multi_a.MultiASourceConfig",
        )
        assert b.config_schema_name == "source.multi_b.MultiBSourceConfig"
        assert all(isinstance(r, ReactionPluginProxy) for r in plugin.reaction_plugins)
        assert [r.config_schema_name for r in plugin.reaction_plugins] == [
            "reaction.multi_r1.MultiR1ReactionConfig",
            "reaction.multi_r2.MultiR2ReactionConfig",
            "reaction.multi_r3.MultiR3ReactionConfig",
        ]
        assert all(isinstance(x, BootstrapPluginProxy) for x in plugin.bootstrap_plugins)
        assert plugin.bootstrap_plugins[1].kind == "multi-b2"
        assert plugin.source_plugins[0].payload_format == "application/json"
        assert "multi-a" in repr(a)


def test_config_schema_json_parsed(fixture_plugins: dict[str, Path]) -> None:
    with load_plugin(fixture_plugins["source"], CallbackContext("t")) as plugin:
        schema = plugin.source_plugins[0].config_schema_json()
    assert schema["title"] == "source.fixture.FixtureSourceConfig"
    assert schema["type"] == "object"
    properties = schema["properties"]
    assert properties["event_count"] == {
        "type": "integer",
        "minimum": 0,
        "default": 10,
        "description": "number of change events pushed per subscription",
    }
    assert properties["label"]["default"] == "Person"
    assert "mode" not in properties  # only the hostile kinds have one


def test_config_schema_string_is_freed(fixture_plugins: dict[str, Path]) -> None:
    with load_plugin(fixture_plugins["source"], CallbackContext("t")) as plugin:
        factory = plugin.source_plugins[0]
        first = factory.config_schema_json()
        schema_bytes = len(str(first))
        for _ in range(200):  # warm up allocator and caches
            factory.config_schema_json()
        gc.collect()
        before = c_heap_in_use()
        for _ in range(10_000):
            assert factory.config_schema_json() == first
        gc.collect()
        after = c_heap_in_use()
    if before is not None and after is not None:
        # 10,000 leaked schema strings would be about 10,000 * schema_bytes
        assert after - before < 10_000 * schema_bytes // 10, (before, after)


def test_hostile_schemas(fixture_plugins: dict[str, Path]) -> None:
    with load_plugin(fixture_plugins["hostile"], CallbackContext("t")) as plugin:
        invalid, empty = plugin.source_plugins
        assert (invalid.kind, empty.kind) == ("hostile", "hostile-empty-schema")
        for _ in range(3):
            with pytest.raises(PluginProtocolError, match="not valid JSON") as info:
                invalid.config_schema_json()
            assert "hostile" in str(info.value)
        # {ptr = 0x1, len = 0, cap = 0}: empty, never freed, and not a JSON object
        for _ in range(3):
            with pytest.raises(PluginProtocolError, match="hostile-empty-schema"):
                empty.config_schema_json()


@pytest.mark.anyio
async def test_create_source_with_bad_config(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["source"], tmp_path)
    with load_plugin(path, CallbackContext("t")) as plugin:
        factory = plugin.source_plugins[0]
        with pytest.raises(PluginCallError) as info:
            await factory.create_source("bad-1", {"event_count": -5})
        message = info.value.plugin_message
        assert message is not None
        assert "invalid configuration for source 'bad-1'" in message
        assert "event_count" in message
        assert "bad-1" in str(info.value)
        with pytest.raises(PluginCallError) as info:
            await factory.create_source("bad-2", '{"label": 12}')
        assert info.value.plugin_message is not None
        assert "'bad-2'" in info.value.plugin_message
        assert "bad-1" not in info.value.plugin_message  # only what this call logged
        stats = fixture_stats_reader(path)
        assert stats["config_errors"] == 2
        assert stats["sources_created"] == 0
        # the factory still works after refusing
        async with await factory.create_source("good", {"event_count": 1}) as source:
            assert source.id == "good"
    assert fixture_stats_reader(path)["sources_dropped"] == 1


@pytest.mark.anyio
async def test_hostile_create_returns_null(fixture_plugins: dict[str, Path]) -> None:
    with load_plugin(fixture_plugins["hostile"], CallbackContext("t")) as plugin:
        factory = plugin.source_plugins[0]
        with pytest.raises(PluginCallError) as info:
            await factory.create_source("h-null", {"mode": "null"})
        assert info.value.plugin_message == "hostile: refusing to create (mode=null)"
        with pytest.raises(PluginCallError) as info:
            await factory.create_source("h-unknown", {"mode": "no-such-mode"})
        assert info.value.plugin_message is not None
        assert "no-such-mode" in info.value.plugin_message


@pytest.mark.anyio
async def test_factories_of_a_closed_plugin_refuse(fixture_plugins: dict[str, Path]) -> None:
    plugin = load_plugin(fixture_plugins["multi"], CallbackContext("t"))
    source_factory = plugin.source_plugins[0]
    reaction_factory = plugin.reaction_plugins[0]
    bootstrap_factory = plugin.bootstrap_plugins[0]
    plugin.close()
    assert source_factory.released
    with pytest.raises(DrasiHostError, match="closed"):
        await source_factory.create_source("late")
    with pytest.raises(DrasiHostError, match="closed"):
        await reaction_factory.create_reaction("late", ["q"])
    with pytest.raises(DrasiHostError, match="closed"):
        await bootstrap_factory.create_bootstrap_provider({})
    with pytest.raises(DrasiHostError, match="closed"):
        source_factory.config_schema_json()
    # what was read at load stays readable
    assert source_factory.kind == "multi-a"
