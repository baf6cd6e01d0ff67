"""Plugin logs and lifecycle events: from plugin threads through the host's C
callbacks into :class:`CallbackContext`, the standard ``logging`` module, the
event histories and the live streams; late calls and exceptions in Python
callbacks must never reach the plugin."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, cast

import anyio
import cffi
import pytest

from drasi_host import (
    CallbackContext,
    ComponentEvent,
    ComponentEventHistory,
    ComponentStatus,
    InstanceCallbackContext,
    LogLevel,
    LogMessage,
    LogRegistry,
    ReactionRuntimeContext,
    SourceRuntimeContext,
    SubscriptionSettings,
    _callbacks,
)
from drasi_host._abi import Borrowed, ffi, key_ctx, lib
from drasi_host.loader import load_plugin
from drasi_host.models import TRACE

Stats = Callable[[Path], dict[str, int]]

_late_ffi = cffi.FFI()
_late_ffi.cdef("void drasi_fixture_late_log(int n);")


def private_copy(src: Path, directory: Path) -> Path:
    """A copy of a built library: loading it gives a fresh library instance."""
    directory.mkdir(parents=True, exist_ok=True)
    dst = directory / src.name
    shutil.copy2(src, dst)
    return dst


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def call_host_log_callback(
    key: int, level: int, message: str, *, component_id: str = "", instance_id: str = ""
) -> None:
    """Call the host's own C log callback, as a plugin would."""
    b = Borrowed()
    entry = ffi.new("FfiLogEntry *")
    entry.level = level
    entry.plugin_id = b.str("direct-plugin")
    entry.target = b.str("tests::direct")
    entry.message = b.str(message)
    entry.timestamp_us = 1_700_000_000_000_000
    entry.instance_id = b.str(instance_id)
    entry.component_id = b.str(component_id)
    lib.dh_log_callback_ptr()(key_ctx(key), entry)


# ---- levels and logger names -------------------------------------------------------


def test_levels_mapped_through_the_c_callback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)
    callbacks = CallbackContext("inst-levels")
    ctx = InstanceCallbackContext(callbacks, "inst-levels", "comp-levels", "source")
    try:
        for level in LogLevel:
            call_host_log_callback(ctx.key, int(level), f"msg {level.name}")
        call_host_log_callback(ctx.key, 9, "strange level")
    finally:
        ctx.close()
    logged = callbacks.log_registry.get("inst-levels", "comp-levels")
    assert [m.level for m in logged] == [*LogLevel, LogLevel.ERROR]
    assert [m.message for m in logged[:5]] == [f"msg {level.name}" for level in LogLevel]
    assert "invalid log level 9" in logged[5].message and "strange level" in logged[5].message
    first = logged[0]
    assert (first.plugin_id, first.target, first.timestamp_us) == (
        "direct-plugin",
        "tests::direct",
        1_700_000_000_000_000,
    )
    assert ctx.logs() == logged

    records = [r for r in caplog.records if r.name == "drasi.plugin.comp-levels"]
    assert [(r.getMessage(), r.levelno) for r in records[:5]] == [
        ("msg ERROR", logging.ERROR),
        ("msg WARN", logging.WARNING),
        ("msg INFO", logging.INFO),
        ("msg DEBUG", logging.DEBUG),
        ("msg TRACE", TRACE),
    ]
    assert TRACE < logging.DEBUG
    assert records[0].drasi_component_id == "comp-levels"  # type: ignore[attr-defined]
    assert records[0].drasi_instance_id == "inst-levels"  # type: ignore[attr-defined]


def test_call_naming_a_released_context_is_dropped() -> None:
    callbacks = CallbackContext("inst-late")
    ctx = InstanceCallbackContext(callbacks, "inst-late", "comp-late", "source")
    call_host_log_callback(ctx.key, int(LogLevel.INFO), "while open")
    ctx.close()
    before = _callbacks.handles.late_calls
    for _ in range(3):
        call_host_log_callback(ctx.key, int(LogLevel.INFO), "after close")
    assert _callbacks.handles.late_calls == before + 3
    logged = callbacks.log_registry.get("inst-late", "comp-late")
    assert [m.message for m in logged] == ["while open"]
    # a key that was never handed out is just as unknown
    call_host_log_callback(0x7FFF_FFFF_0000, int(LogLevel.INFO), "never registered")
    assert _callbacks.handles.late_calls == before + 4


@pytest.mark.anyio
async def test_plugin_logs_reach_registry_and_logging(
    fixture_plugins: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(1)
    callbacks = CallbackContext("inst-logs")
    with load_plugin(fixture_plugins["source"], callbacks) as plugin:
        factory = plugin.source_plugins[0]
        # before initialize the source logs through the plugin-wide callback
        source = await factory.create_source("log-src", {"use_store": True})
        async with source:
            plugin_wide = callbacks.log_registry.get("inst-logs", "")
            assert any(m.message == "created source 'log-src'" for m in plugin_wide)
            created = next(m for m in plugin_wide if m.message == "created source 'log-src'")
            assert (created.plugin_id, created.level) == ("fixture", LogLevel.INFO)
            await source.initialize(SourceRuntimeContext("inst-logs", "log-src"))
            await source.start()  # use_store without a store: a WARN from the plugin
            await source.stop()
    logged = callbacks.log_registry.get("inst-logs", "log-src")
    messages = [(m.level, m.message) for m in logged]
    assert (LogLevel.WARN, "use_store is set but no state store was given") in messages
    assert (LogLevel.INFO, "source started") in messages
    assert all(m.instance_id == "inst-logs" and m.component_id == "log-src" for m in logged)
    now_us = time.time_ns() // 1000
    assert all(now_us - 60_000_000 < m.timestamp_us <= now_us for m in logged)

    by_component = [r for r in caplog.records if r.name == "drasi.plugin.log-src"]
    assert ("use_store is set but no state store was given", logging.WARNING) in [
        (r.getMessage(), r.levelno) for r in by_component
    ]
    # without a component id the logger is named after the plugin id
    assert any(
        r.name == "drasi.plugin.fixture" and r.getMessage() == "created source 'log-src'"
        for r in caplog.records
    )


# ---- logs from a plugin's own thread, late calls ----------------------------------------


def test_threadlog_messages_and_late_calls(
    fixture_plugins: dict[str, Path],
    fixture_stats_reader: Stats,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="drasi.plugin.threadlog")
    path = private_copy(fixture_plugins["threadlog"], tmp_path)
    callbacks = CallbackContext("inst-thread")
    plugin = load_plugin(path, callbacks)

    def thread_messages() -> list[str]:
        return [
            m.message
            for m in callbacks.log_registry.get("inst-thread", "")
            if m.message.startswith("threadlog ")
        ]

    assert wait_until(lambda: len(thread_messages()) >= 100)
    assert thread_messages() == [f"threadlog {n}" for n in range(100)]
    assert wait_until(lambda: bool(callbacks.source_event_history.get("threadlog")))
    (event,) = callbacks.source_event_history.get("threadlog")
    assert (event.component_type, event.status) == ("source", ComponentStatus.RUNNING)
    thread_records = [r for r in caplog.records if r.name == "drasi.plugin.threadlog"]
    assert sum(r.getMessage().startswith("threadlog ") for r in thread_records) == 100

    hook: Any = _late_ffi.dlopen(str(path))
    hook.drasi_fixture_late_log(2)  # still open: delivered
    late = [
        m.message
        for m in callbacks.log_registry.get("inst-thread", "")
        if m.message.startswith("late")
    ]
    assert late == ["late 0", "late 1"]

    plugin.close()  # releases the factories and the plugin's callback context
    before = _callbacks.handles.late_calls
    count_before = len(callbacks.log_registry.get("inst-thread", ""))
    hook.drasi_fixture_late_log(25)
    assert _callbacks.handles.late_calls == before + 25
    assert len(callbacks.log_registry.get("inst-thread", "")) == count_before
    assert fixture_stats_reader(path)["late_calls_made"] == 27


# ---- exceptions inside Python callbacks -----------------------------------------------------


class ExplodingRegistry(LogRegistry):
    def add(self, message: LogMessage) -> None:
        raise RuntimeError(f"registry exploded on {message.message!r}")


@pytest.mark.anyio
async def test_exception_in_callback_is_contained(
    fixture_plugins: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    callbacks = CallbackContext("inst-boom", log_registry=ExplodingRegistry())
    errors_before = _callbacks.callback_errors.count
    with (
        caplog.at_level(logging.ERROR, logger="drasi_host.callbacks"),
        load_plugin(fixture_plugins["source"], callbacks) as plugin,
    ):
        async with await plugin.source_plugins[0].create_source(
            "boom-src", {"event_count": 20}
        ) as source:
            await source.initialize(SourceRuntimeContext("inst-boom", "boom-src"))
            await source.start()
            response = await source.subscribe(
                SubscriptionSettings("boom-src", "q", False, ["Person"], [])
            )
            async with response.receiver as receiver:
                ids = [event.entity_id async for event in receiver]
            assert len(ids) == 20 and ids[0] == "n0"
            await source.stop()
            # lifecycle events still arrive: only the log registry is broken
            statuses = [e.status for e in callbacks.source_event_history.get("boom-src")]
            assert statuses == [
                ComponentStatus.STARTING,
                ComponentStatus.RUNNING,
                ComponentStatus.STOPPING,
                ComponentStatus.STOPPED,
            ]
    raised = _callbacks.callback_errors.count - errors_before
    assert raised >= 5  # created, initialized, started, subscribe, stopped
    assert isinstance(_callbacks.callback_errors.last, RuntimeError)
    assert "registry exploded" in str(_callbacks.callback_errors.last)
    assert any("registry exploded" in r.getMessage() for r in caplog.records)


# ---- live streams and bounded histories -------------------------------------------------------


@pytest.mark.anyio
async def test_log_registry_subscribe_streams_new_messages(
    fixture_plugins: dict[str, Path],
) -> None:
    callbacks = CallbackContext("inst-sub")
    received: list[LogMessage] = []
    with load_plugin(fixture_plugins["source"], callbacks) as plugin:
        async with await plugin.source_plugins[0].create_source("sub-src") as source:
            await source.initialize(SourceRuntimeContext("inst-sub", "sub-src"))
            history_before = len(callbacks.log_registry.get("inst-sub", "sub-src"))

            async def collect() -> None:
                stream = cast(
                    AsyncGenerator[LogMessage, None],
                    callbacks.log_registry.subscribe("inst-sub", "sub-src"),
                )
                async with contextlib.aclosing(stream):
                    async for message in stream:
                        received.append(message)
                        if len(received) == 3:
                            return

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(collect)
                    while len(received) < 3:
                        await source.deprovision()  # logs "source deprovisioned"
                        await anyio.sleep(0.01)
    assert [m.message for m in received] == ["source deprovisioned"] * 3
    assert all(m.component_id == "sub-src" for m in received)
    assert len(callbacks.log_registry.get("inst-sub", "sub-src")) > history_before


@pytest.mark.anyio
async def test_histories_are_bounded(fixture_plugins: dict[str, Path]) -> None:
    callbacks = CallbackContext(
        "inst-bound",
        log_registry=LogRegistry(max_per_component=2),
        source_event_history=ComponentEventHistory(max_per_component=3),
    )
    with load_plugin(fixture_plugins["source"], callbacks) as plugin:
        async with await plugin.source_plugins[0].create_source("bound-src") as source:
            await source.initialize(SourceRuntimeContext("inst-bound", "bound-src"))
            for _ in range(2):
                await source.start()
                await source.stop()
            await source.deprovision()
    history = callbacks.source_event_history
    assert [e.status for e in history.get("bound-src")] == [
        ComponentStatus.RUNNING,
        ComponentStatus.STOPPING,
        ComponentStatus.STOPPED,
    ]
    assert history.latest_status("bound-src") is ComponentStatus.STOPPED
    assert history.latest_status("never-seen") is None
    assert "bound-src" in history.components()
    logs = callbacks.log_registry.get("inst-bound", "bound-src")
    assert [m.message for m in logs] == ["source stopped", "source deprovisioned"]


@pytest.mark.anyio
async def test_lifecycle_events_route_by_component_type(fixture_plugins: dict[str, Path]) -> None:
    callbacks = CallbackContext("inst-route")
    with load_plugin(fixture_plugins["multi"], callbacks) as plugin:
        source = await plugin.source_plugins[0].create_source("route-src")
        reaction = await plugin.reaction_plugins[0].create_reaction("route-rx", ["q1"])
        async with source, reaction:
            await source.initialize(SourceRuntimeContext("inst-route", "route-src"))
            await reaction.initialize(ReactionRuntimeContext("inst-route", "route-rx"))
            await source.start()
            await reaction.start()
            await reaction.stop()
            await source.stop()
            assert reaction.callback_context is not None
            assert [e.status for e in reaction.callback_context.events()] == [
                ComponentStatus.STARTING,
                ComponentStatus.RUNNING,
                ComponentStatus.STOPPING,
                ComponentStatus.STOPPED,
            ]
    expected = [
        ComponentStatus.STARTING,
        ComponentStatus.RUNNING,
        ComponentStatus.STOPPING,
        ComponentStatus.STOPPED,
    ]
    reaction_events = callbacks.reaction_event_history.get("route-rx")
    source_events = callbacks.source_event_history.get("route-src")
    assert [e.status for e in reaction_events] == expected
    assert [e.status for e in source_events] == expected
    assert {e.component_type for e in reaction_events} == {"reaction"}
    assert {e.component_type for e in source_events} == {"source"}
    assert callbacks.source_event_history.get("route-rx") == []
    assert callbacks.reaction_event_history.get("route-src") == []


@pytest.mark.anyio
async def test_status_stream_follows_lifecycle_until_closed(
    fixture_plugins: dict[str, Path],
) -> None:
    callbacks = CallbackContext("inst-status")
    seen: list[ComponentEvent] = []
    finished = anyio.Event()
    with load_plugin(fixture_plugins["source"], callbacks) as plugin:
        source = await plugin.source_plugins[0].create_source("status-src", {"fail_start": True})
        await source.initialize(SourceRuntimeContext("inst-status", "status-src"))
        ctx = source.callback_context
        assert ctx is not None and ctx.component_id == "status-src"

        async def follow() -> None:
            assert ctx is not None
            async for event in ctx.status_stream():
                seen.append(event)
            finished.set()  # the stream ended because the source was closed

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                while not any(e.status is ComponentStatus.ERROR for e in seen):
                    with contextlib.suppress(Exception):
                        await source.start()
                    await anyio.sleep(0.01)
                await source.aclose()
                await finished.wait()
    statuses = [e.status for e in seen]
    # The stream may join in the middle of a start attempt: look for an
    # attempt it saw whole (STARTING, then ERROR).
    error_at = next(
        i
        for i in range(1, len(statuses))
        if statuses[i] is ComponentStatus.ERROR and statuses[i - 1] is ComponentStatus.STARTING
    )
    assert seen[error_at].message == "start refused: fail_start is set"
    assert all(e.component_id == "status-src" for e in seen)
