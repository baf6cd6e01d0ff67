"""``SourceProxy`` against the fixture sources: identity, lifecycle and
status, plugin errors and ABI violations, release exactly once, and the event
loop staying free while plugin calls and event delivery run."""

from __future__ import annotations

import gc
import itertools
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from generations import Gen
from lifetime_helpers import eventually

from drasi_host import (
    CallbackContext,
    ComponentStatus,
    DispatchMode,
    DrasiHostError,
    LifecycleError,
    LoadedPlugin,
    PluginCallError,
    PluginProtocolError,
    SourceProxy,
    SourceRuntimeContext,
    SubscriptionSettings,
    _callbacks,
)
from drasi_host.loader import load_plugin

Stats = Callable[[Path], dict[str, int]]
INSTANCE = "test-instance"


def private_copy(src: Path, directory: Path) -> Path:
    """A copy of a built library: loading it gives a fresh library instance."""
    directory.mkdir(parents=True, exist_ok=True)
    dst = directory / src.name
    shutil.copy2(src, dst)
    return dst


def settings(source_id: str, *, bootstrap: bool = False) -> SubscriptionSettings:
    return SubscriptionSettings(source_id, "q1", bootstrap, ["Person"], ["KNOWS"])


@asynccontextmanager
async def plugin_source(
    path: Path,
    callbacks: CallbackContext,
    source_id: str,
    config: dict[str, Any] | None = None,
    *,
    factory: int = 0,
    initialize: bool = True,
) -> AsyncIterator[tuple[LoadedPlugin, SourceProxy]]:
    with load_plugin(path, callbacks) as plugin:
        source = await plugin.source_plugins[factory].create_source(source_id, config)
        async with source:
            if initialize:
                await source.initialize(SourceRuntimeContext(INSTANCE, source_id))
            yield plugin, source


@pytest.mark.anyio
async def test_identity(fixture_plugins: dict[str, Path], callbacks: CallbackContext) -> None:
    with load_plugin(fixture_plugins["multi"], callbacks) as plugin:
        source = await plugin.source_plugins[1].create_source("id-src", auto_start=False)
        async with source:
            assert source.id == "id-src"
            assert source.type_name == "multi-b"
            assert source.auto_start is False
            assert source.dispatch_mode is DispatchMode.CHANNEL
            assert source.payload_format == "application/json"
            assert "id-src" in repr(source) and "open" in repr(source)
        assert "closed" in repr(source)
        other = await plugin.source_plugins[0].create_source("id-src-2")
        async with other:
            assert (other.type_name, other.auto_start) == ("multi-a", True)


@pytest.mark.anyio
async def test_lifecycle_and_status(gen: Gen, callbacks: CallbackContext) -> None:
    async with plugin_source(gen.source_lib, callbacks, "life") as (_, source):
        assert source.abi_version == gen.abi
        assert await source.status() is gen.initialized_status
        await source.start()
        assert await source.status() is ComponentStatus.RUNNING
        with pytest.raises(LifecycleError) as info:  # already running: refused
            await source.start()
        assert (info.value.operation, info.value.state) == ("start", ComponentStatus.RUNNING)
        assert await source.status() is ComponentStatus.RUNNING
        await source.stop()
        assert await source.status() is ComponentStatus.STOPPED
        await source.deprovision()
        assert await source.status() is gen.deprovisioned_status
    events = callbacks.source_event_history.get("life")
    assert tuple(e.status for e in events) == gen.lifecycle_statuses
    assert all(e.component_id == "life" and e.component_type == "source" for e in events)
    stamps = [e.timestamp_us for e in events]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time_ns() // 1000) < 60_000_000
    if gen.abi != "0.4":
        return  # the 0.13 fixture logs through its library's callback only
    logs = [m.message for m in callbacks.log_registry.get(INSTANCE, "life")]
    assert logs[0].startswith("source initialized (state store: no")
    assert "source deprovisioned" in logs


@pytest.mark.anyio
async def test_fail_start(fixture_plugins: dict[str, Path], callbacks: CallbackContext) -> None:
    path = fixture_plugins["source"]
    async with plugin_source(path, callbacks, "fail", {"fail_start": True}) as (_, source):
        with pytest.raises(PluginCallError) as info:
            await source.start()
        assert info.value.plugin_message == "start refused: fail_start is set"
        assert info.value.error_code == 1
        assert info.value.component == "fail"
        assert "fail" in str(info.value) and "start" in str(info.value)
        assert await source.status() is ComponentStatus.ERROR
    last = callbacks.source_event_history.get("fail")[-1]
    assert last.status is ComponentStatus.ERROR
    assert last.message == "start refused: fail_start is set"


@pytest.mark.anyio
async def test_hostile_start_errors(
    fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    path = fixture_plugins["hostile"]
    async with plugin_source(path, callbacks, "h-start", {"mode": "start_error"}) as (_, source):
        with pytest.raises(PluginCallError) as info:
            await source.start()
        assert (info.value.error_code, info.value.plugin_message) == (7, "hostile start failure")
        assert "code 7" in str(info.value)
    async with plugin_source(path, callbacks, "h-nullmsg", {"mode": "start_error_nullmsg"}) as (
        _,
        source,
    ):
        with pytest.raises(PluginCallError) as info:
            await source.start()
        assert (info.value.error_code, info.value.plugin_message) == (3, None)
        assert await source.status() is ComponentStatus.ERROR


@pytest.mark.anyio
async def test_bad_enum_values(
    fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    path = fixture_plugins["hostile"]
    async with plugin_source(path, callbacks, "h-status", {"mode": "bad_status"}) as (_, source):
        with pytest.raises(PluginProtocolError, match="42 is not a valid ComponentStatus"):
            await source.status()
        await source.start()  # the rest of the source still works
    async with plugin_source(path, callbacks, "h-disp", {"mode": "bad_dispatch"}) as (_, source):
        with pytest.raises(PluginProtocolError, match="7 is not a valid DispatchMode") as info:
            _ = source.dispatch_mode
        assert "h-disp" in str(info.value)


@pytest.mark.anyio
async def test_null_subscription(
    fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    path = fixture_plugins["hostile"]
    async with plugin_source(path, callbacks, "h-nosub", {"mode": "null_subscription"}) as (
        _,
        source,
    ):
        with pytest.raises(PluginCallError) as info:
            await source.subscribe(settings("h-nosub"))
        assert info.value.plugin_message is not None
        assert "hostile: returning no subscription" in info.value.plugin_message
        assert info.value.component == "h-nosub"


@pytest.mark.anyio
async def test_null_receiver_leaks_nothing(
    fixture_plugins: dict[str, Path],
    fixture_stats_reader: Stats,
    callbacks: CallbackContext,
    tmp_path: Path,
) -> None:
    path = private_copy(fixture_plugins["hostile"], tmp_path)
    async with plugin_source(path, callbacks, "h-norx", {"mode": "null_receiver"}) as (_, source):
        for _ in range(3):
            with pytest.raises(PluginProtocolError, match="NULL change receiver"):
                await source.subscribe(settings("h-norx", bootstrap=True))
        stats = fixture_stats_reader(path)
        assert stats["receivers_created"] == stats["bootstrap_receivers_created"] == 0
        assert stats["events_created"] == 0
    stats = fixture_stats_reader(path)
    assert stats["sources_dropped"] == 1
    assert stats["receivers_dropped"] == 0


@pytest.mark.anyio
async def test_empty_strings(fixture_plugins: dict[str, Path], callbacks: CallbackContext) -> None:
    path = fixture_plugins["hostile"]
    config = {"mode": "empty_strings"}
    async with plugin_source(path, callbacks, "h-empty", config, initialize=False) as (_, source):
        assert (source.id, source.type_name) == ("", "")
        with pytest.raises(ValueError, match="source_id"):  # not the id the plugin reports
            await source.initialize(SourceRuntimeContext(INSTANCE, "h-empty"))
        await source.initialize(SourceRuntimeContext(INSTANCE, ""))
        await source.start()
        response = await source.subscribe(settings("h-empty"))
        assert (response.query_id, response.source_id) == ("", "")
        async with response.receiver as receiver:
            events = [e async for e in receiver]
        expected = [f"r{i}" if i % 4 == 3 else f"n{i}" for i in range(10)]
        assert [e.entity_id for e in events] == expected
        await source.stop()


@pytest.mark.anyio
async def test_aclose_drops_once(gen: Gen, callbacks: CallbackContext, tmp_path: Path) -> None:
    path = private_copy(gen.source_lib, tmp_path)
    sources_dropped = gen.dropped_counters["source"]
    # 0.4: one change and one bootstrap receiver; 0.13: also the bootstrap result receiver
    receivers = 2 if gen.abi == "0.4" else 3

    def receivers_dropped() -> int:
        stats = gen.read_stats(path)
        return stats["receivers_dropped"] + stats.get("bootstrap_receivers_dropped", 0)

    with load_plugin(path, callbacks) as plugin:
        source = await plugin.source_plugins[0].create_source("drop-once")
        await source.initialize(SourceRuntimeContext(INSTANCE, "drop-once"))
        await source.start()
        response = await source.subscribe(settings("drop-once", bootstrap=True))
        assert not source.closed
        await source.aclose()
        assert source.closed
        assert gen.read_stats(path)[sources_dropped] == 1
        # open receivers were closed first
        assert receivers_dropped() == receivers
        assert response.receiver.closed
        await source.aclose()
        await response.aclose()
        assert gen.read_stats(path)[sources_dropped] == 1 and receivers_dropped() == receivers

        for call in (source.start, source.stop, source.status, source.deprovision):
            with pytest.raises(DrasiHostError, match="closed"):
                await call()
        with pytest.raises(DrasiHostError, match="closed"):
            await source.subscribe(settings("drop-once"))
        with pytest.raises(DrasiHostError, match="closed"):
            await source.initialize(SourceRuntimeContext(INSTANCE, "drop-once"))
        with pytest.raises(DrasiHostError, match="closed"):
            _ = source.dispatch_mode
        # the per-instance callback context was released: late plugin calls are dropped
        assert source.callback_context is not None
        assert source.callback_context.key not in _callbacks.handles

        async with await plugin.source_plugins[0].create_source("drop-ctx") as other:
            assert gen.read_stats(path)[sources_dropped] == 1
            assert other.id == "drop-ctx"
        assert gen.read_stats(path)[sources_dropped] == 2


@pytest.mark.anyio
async def test_garbage_collected_source_is_dropped(
    gen: Gen, callbacks: CallbackContext, tmp_path: Path
) -> None:
    path = private_copy(gen.source_lib, tmp_path)
    counter = gen.dropped_counters["source"]
    with load_plugin(path, callbacks) as plugin:
        source = await plugin.source_plugins[0].create_source("gc-src")
        await source.initialize(SourceRuntimeContext(INSTANCE, "gc-src"))
        await source.start()
        assert gen.read_stats(path)[counter] == 0
        with pytest.warns(ResourceWarning, match="gc-src"):
            del source
            gc.collect()
        assert eventually(lambda: gen.read_stats(path)[counter] == 1)


@pytest.mark.anyio
async def test_loop_stays_responsive(
    fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    """A ticker keeps running while the host waits for slow plugin pushes and
    while it drains a fast 10,000-event stream."""
    ticks: list[float] = []

    async def ticker(stop: anyio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await anyio.sleep(0.002)

    path = fixture_plugins["source"]
    config = {"event_count": 40, "interval_us": 5_000}
    async with plugin_source(path, callbacks, "slow", config) as (_, source):
        await source.start()
        response = await source.subscribe(settings("slow"))
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker, stop)
            started = time.monotonic()
            async with response.receiver as receiver:
                count = sum([1 async for _ in receiver])
            elapsed = time.monotonic() - started
            stop.set()
        assert count == 40
        assert elapsed >= 0.15  # 39 pauses of 5 ms
        # the loop ran the ticker throughout instead of blocking on the plugin
        assert len(ticks) >= elapsed / 0.002 / 4
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert max(gaps) < 0.1

    ticks.clear()
    async with plugin_source(path, callbacks, "fast", {"event_count": 10_000}) as (_, source):
        await source.start()
        response = await source.subscribe(settings("fast"))
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker, stop)
            async with response.receiver as receiver:
                count = 0
                async for _ in receiver:
                    count += 1
            stop.set()
        assert count == 10_000
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        assert len(ticks) >= 2 and max(gaps) < 0.25
