"""Object lifetimes, lifecycle rules and typed errors (API.md, "Object
lifetimes and lifecycle rules" and "Errors"), against the ``lifetime``
fixture plugin, which counts calls after drop, drops during calls and the
thread its drop_fn runs on.  The rules every plugin gets run for both ABI
generations (the ``plugin`` and ``source`` fixtures: the ``lifetime``
plugin for 0.4, the 0.13 fixture source for 0.13)."""

from __future__ import annotations

import ctypes
import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from generations import Gen, stats013
from lifetime_helpers import eventually

from drasi_host import (
    CallbackContext,
    ClosedError,
    ComponentStatus,
    ConfigurationError,
    DrasiHostError,
    LifecycleError,
    LoadedPlugin,
    PayloadFormatError,
    PluginCallError,
    QueryResult,
    ReactionRuntimeContext,
    ResultDiff,
    SourceRuntimeContext,
    SubscriptionSettings,
)
from drasi_host._native import DropThread
from drasi_host.loader import load_plugin
from drasi_host.proxies.source import SourceProxy

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
FIELDS = (
    "created",
    "dropped",
    "calls",
    "calls_after_drop",
    "drops_during_call",
    "blocked",
    "last_drop_thread",
    "live",
)


class Lifetimes:
    """The counters of the lifetime fixture (process-wide)."""

    def __init__(self, path: Path) -> None:
        self._lib = ctypes.CDLL(str(path))
        self._lib.drasi_lifetime_stats.argtypes = [ctypes.POINTER(ctypes.c_int64)]

    def read(self) -> dict[str, int]:
        out = (ctypes.c_int64 * 8)()
        self._lib.drasi_lifetime_stats(out)
        values = dict(zip(FIELDS, out, strict=True))
        values["last_drop_thread"] &= 2**64 - 1
        return values


@pytest.fixture
def lifetime_lib(fixture_plugins: dict[str, Path]) -> Path:
    return fixture_plugins["lifetime"]


@pytest.fixture
def counters(lifetime_lib: Path) -> Lifetimes:
    return Lifetimes(lifetime_lib)


@dataclass(frozen=True)
class Flavour:
    """A generation's source plugin for the rules every plugin gets."""

    abi: str
    path: Path
    #: Observable plugin activity: every call (0.4 ``lifetime``), or the
    #: lifecycle callbacks and log records of the 0.13 source (each
    #: start_fn and stop_fn makes some).
    calls: Callable[[], int]
    dropped: Callable[[], int]
    factories_dropped: Callable[[], int]
    #: A configuration the factory refuses, and the refusal's text.
    refuse: dict[str, Any]
    refused_text: str
    #: Whether the plugin logs its refusal (0.4 has no other channel).
    logs_refusal: bool


@pytest.fixture
def flavour(
    gen: Gen, lifetime_lib: Path, counters: Lifetimes, fixture_stats_reader: Any
) -> Flavour:
    if gen.abi == "0.4":
        return Flavour(
            "0.4",
            lifetime_lib,
            lambda: counters.read()["calls"],
            lambda: counters.read()["dropped"],
            lambda: fixture_stats_reader(lifetime_lib)["factories_dropped"],
            {"refuse": True},
            "source no refused: the configuration says so",
            True,
        )
    path = gen.source_lib

    def activity() -> int:
        s = stats013(path)
        return s["lifecycle_calls"] + s["logs_emitted"] + s["logs_filtered"]

    return Flavour(
        "0.13",
        path,
        activity,
        lambda: stats013(path)["objects_dropped"],
        lambda: stats013(path)["factories_dropped"],
        {"mode": "fail", "reason": "the configuration says so"},
        "fixture013: create refused: the configuration says so",
        False,
    )


@pytest.fixture
def plugin(flavour: Flavour, callbacks: CallbackContext) -> Iterator[LoadedPlugin]:
    """The source plugin of each generation."""
    with load_plugin(flavour.path, callbacks) as loaded:
        assert loaded.abi_version == flavour.abi
        yield loaded


@pytest.fixture
def lifetime_plugin(lifetime_lib: Path, callbacks: CallbackContext) -> Iterator[LoadedPlugin]:
    """The 0.4 ``lifetime`` plugin (for what only its counters show)."""
    with load_plugin(lifetime_lib, callbacks) as loaded:
        yield loaded


@pytest.fixture
async def lifetime_source(lifetime_plugin: LoadedPlugin) -> AsyncIterator[SourceProxy]:
    async with await lifetime_plugin.source_plugins[0].create_source("s1", {}) as created:
        yield created


@pytest.fixture
async def source(plugin: LoadedPlugin) -> AsyncIterator[SourceProxy]:
    async with await plugin.source_plugins[0].create_source("s1", {}) as created:
        yield created


def ctx(source_id: str = "s1") -> SourceRuntimeContext:
    return SourceRuntimeContext("inst", source_id)


# ---- lifecycle rules -------------------------------------------------------------


async def test_calls_before_initialize_are_refused(source: SourceProxy, flavour: Flavour) -> None:
    before = flavour.calls()
    with pytest.raises(LifecycleError) as info:
        await source.start()
    assert (info.value.operation, info.value.state) == ("start", None)
    assert (info.value.plugin, info.value.component_id) == (flavour.path.name, "s1")
    with pytest.raises(LifecycleError) as info:
        await source.subscribe(SubscriptionSettings("s1", "q1", False, [], []))
    assert info.value.operation == "subscribe"
    await source.stop()  # never initialised: returns without calling the plugin
    assert flavour.calls() == before


async def test_initialize_exactly_once_with_the_components_id(source: SourceProxy) -> None:
    with pytest.raises(ValueError, match="source_id is 'other'"):
        await source.initialize(ctx("other"))
    with pytest.raises(TypeError):
        await source.initialize({"instance_id": "inst", "source_id": "s1"})  # type: ignore[arg-type]
    await source.initialize(ctx())
    with pytest.raises(LifecycleError) as info:
        await source.initialize(ctx())
    assert (info.value.operation, info.value.state) == ("initialize", ComponentStatus.STOPPED)


async def test_start_and_stop_follow_the_state(source: SourceProxy, flavour: Flavour) -> None:
    await source.initialize(ctx())
    calls = flavour.calls()
    await source.stop()  # stopped: the plugin is not called
    assert flavour.calls() == calls
    await source.start()
    with pytest.raises(LifecycleError) as info:
        await source.start()
    assert (info.value.operation, info.value.state) == ("start", ComponentStatus.RUNNING)
    assert await source.status() is ComponentStatus.RUNNING
    await source.stop()
    calls = flavour.calls()
    await source.stop()
    assert flavour.calls() == calls
    await source.start()  # a stopped source starts again
    await source.stop()


async def test_concurrent_start_is_refused(lifetime_plugin: LoadedPlugin) -> None:
    factory = lifetime_plugin.source_plugins[0]
    async with await factory.create_source("slow", {"call_sleep_us": 100_000}) as slow:
        await slow.initialize(ctx("slow"))
        errors: list[BaseException] = []

        async def start() -> None:
            try:
                await slow.start()
            except LifecycleError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            tg.start_soon(start)
        assert len(errors) == 1
        assert errors[0].state is ComponentStatus.STARTING  # type: ignore[attr-defined]


async def test_every_call_on_a_closed_object_is_closed_error(
    plugin: LoadedPlugin, flavour: Flavour
) -> None:
    source = await plugin.source_plugins[0].create_source("c1")
    await source.initialize(ctx("c1"))
    await source.aclose()
    await source.aclose()  # idempotent
    calls = flavour.calls()
    for call in (
        source.start(),
        source.stop(),
        source.status(),
        source.deprovision(),
        source.initialize(ctx("c1")),
        source.subscribe(SubscriptionSettings("c1", "q1", False, [], [])),
    ):
        with pytest.raises(ClosedError) as info:
            await call
        assert isinstance(info.value, anyio.ClosedResourceError)
    with pytest.raises(ClosedError):
        _ = source.dispatch_mode
    assert flavour.calls() == calls
    plugin.close()
    with pytest.raises(ClosedError):
        plugin.source_plugins[0].config_schema_json()
    with pytest.raises(ClosedError):
        await plugin.source_plugins[0].create_source("late")


# ---- arguments and configuration -------------------------------------------------


async def test_configuration_errors_name_the_component(
    plugin: LoadedPlugin, flavour: Flavour
) -> None:
    factory = plugin.source_plugins[0]
    for bad in (["not", "a", "mapping"], {"when": datetime.now()}, "{not json", "[1, 2]"):
        with pytest.raises(ConfigurationError) as info:
            await factory.create_source("cfg-1", bad)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)
        assert info.value.component_id == "cfg-1"
        assert info.value.plugin == flavour.path.name
        assert "'cfg-1'" in str(info.value)
    with pytest.raises(ConfigurationError):
        await factory.create_source("cfg-2", {"x": float("nan")})


async def test_reaction_argument_rules(gen: Gen) -> None:
    with load_plugin(gen.reaction_lib, CallbackContext("t")) as plugin:
        factory = plugin.reaction_plugins[0]
        with pytest.raises(TypeError, match="list of str"):
            await factory.create_reaction("r1", "q1", {})
        with pytest.raises(TypeError):
            await factory.create_reaction("r1", ["q1", 2], {})  # type: ignore[list-item]
        with pytest.raises(ConfigurationError) as info:
            await factory.create_reaction("r1", ["q1"], {"bad": {1, 2}})
        assert info.value.component_id == "r1"
        result = QueryResult("q1", datetime.now(timezone.utc), [ResultDiff.add({"a": 1})])
        async with await factory.create_reaction("r1", ["q1"], {}) as reaction:
            with pytest.raises(LifecycleError) as lifecycle:
                await reaction.enqueue_query_result(result)
            assert lifecycle.value.operation == "enqueue_query_result"
            await reaction.initialize(ReactionRuntimeContext("t", "r1"))
            with pytest.raises(TypeError, match="QueryResult"):
                await reaction.enqueue_query_result({"query_id": "q1"})  # type: ignore[arg-type]
            other = QueryResult("q2", result.timestamp, result.results)
            with pytest.raises(ValueError, match="'q2'"):
                await reaction.enqueue_query_result(other)
            with pytest.raises(ValueError):
                await reaction.enqueue_query_results([other])
            with pytest.raises(LifecycleError, match="is not running"):
                await reaction.enqueue_query_result(result)
            await reaction.start()
            assert await reaction.enqueue_query_result(result) > 0
            await reaction.stop()
        with pytest.raises(ClosedError):
            await reaction.enqueue_query_result(result)


# ---- errors ------------------------------------------------------------------------


async def test_a_refusal_is_reported_once_in_the_exception(
    plugin: LoadedPlugin,
    flavour: Flavour,
    callbacks: CallbackContext,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="drasi.plugin"),
        pytest.raises(PluginCallError) as info,
    ):
        await plugin.source_plugins[0].create_source("no", flavour.refuse)
    err = info.value
    assert (err.plugin, err.component_id) == (flavour.path.name, "no")
    assert err.plugin_message == flavour.refused_text
    assert str(err).count("refused: the configuration says so") == 1
    assert err.code == (None if flavour.abi == "0.4" else 1)
    if not flavour.logs_refusal:  # 0.13: the text comes in the create result
        return
    # Not printed on its own; still in logging and in the log registry.
    assert "refused" not in capfd.readouterr().err
    assert any("refused" in r.getMessage() for r in caplog.records)
    logged = [m.message for m in callbacks.log_registry.get("test-instance", "")]
    assert any("refused" in m for m in logged)


async def test_a_refused_subscription_names_plugin_and_component(
    lifetime_source: SourceProxy,
) -> None:
    source = lifetime_source
    await source.initialize(ctx())
    with pytest.raises(PluginCallError, match="subscribe") as info:
        await source.subscribe(SubscriptionSettings("s1", "q1", False, [], []))
    assert (info.value.plugin, info.value.component_id) == ("libdrasi_lifetime.so", "s1")
    assert not source.closed  # a refusal does not close the source


def test_wrapped_load_errors_keep_attributes_and_cause(
    fixture_plugins: dict[str, Path],
) -> None:
    path = fixture_plugins["badformat"]
    with pytest.raises(PayloadFormatError) as info:
        load_plugin(path, CallbackContext("t"))
    assert info.value.plugin == path.name
    assert str(info.value).startswith(str(path))
    assert isinstance(info.value.__cause__, PayloadFormatError)


# ---- release: once, after calls, on the drop thread ------------------------------------


async def test_drop_runs_on_the_drop_thread(
    lifetime_plugin: LoadedPlugin, counters: Lifetimes
) -> None:
    source = await lifetime_plugin.source_plugins[0].create_source("t1")
    await source.initialize(ctx("t1"))
    await source.aclose()
    stats = counters.read()
    assert stats["last_drop_thread"] == DropThread.get().ident
    assert stats["last_drop_thread"] != threading.get_ident()


async def test_garbage_collected_source_is_released_and_warns(
    plugin: LoadedPlugin, flavour: Flavour, counters: Lifetimes
) -> None:
    source = await plugin.source_plugins[0].create_source("gc-1")
    await source.initialize(ctx("gc-1"))
    await source.start()
    before = flavour.dropped()
    with pytest.warns(ResourceWarning, match="'gc-1' was garbage-collected while open"):
        del source
        gc.collect()
    assert eventually(lambda: flavour.dropped() == before + 1)
    if flavour.abi != "0.4":
        return  # the thread of the drop and late calls: what the lifetime plugin records
    stats = counters.read()
    assert stats["last_drop_thread"] == DropThread.get().ident != threading.get_ident()
    assert stats["calls_after_drop"] == 0


async def test_aclose_racing_calls_never_drops_during_a_call(
    lifetime_plugin: LoadedPlugin, counters: Lifetimes
) -> None:
    factory = lifetime_plugin.source_plugins[0]
    before = counters.read()
    outcomes = {"done": 0, "closed": 0}
    for i in range(1000):
        source = await factory.create_source(f"race-{i}", {"call_sleep_us": i % 7 * 20})
        await source.initialize(ctx(f"race-{i}"))

        async def call(s: SourceProxy = source, n: int = i) -> None:
            try:
                if n % 2:
                    await s.start()
                else:
                    await s.status()
                outcomes["done"] += 1
            except ClosedError:
                outcomes["closed"] += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            if i % 3:
                await anyio.lowlevel.checkpoint()
            tg.start_soon(source.aclose)
        assert source._life.released
    after = counters.read()
    assert after["calls_after_drop"] == before["calls_after_drop"] == 0
    assert after["drops_during_call"] == before["drops_during_call"] == 0
    assert after["dropped"] - before["dropped"] == 1000
    assert after["live"] == before["live"]
    assert outcomes["done"] + outcomes["closed"] == 1000


async def test_closing_the_plugin_closes_its_factories(flavour: Flavour) -> None:
    plugin = load_plugin(flavour.path, CallbackContext("t"))
    factory = plugin.source_plugins[0]
    before = flavour.factories_dropped()
    count = sum(
        len(group)
        for group in (
            plugin.source_plugins,
            plugin.reaction_plugins,
            plugin.bootstrap_plugins,
            plugin.identity_provider_plugins,
            plugin.secret_store_plugins,
        )
    )
    async with plugin:
        assert not factory.closed
    assert factory.closed and factory.released and plugin.closed
    assert flavour.factories_dropped() == before + count


# ---- cancellation and interpreter exit ---------------------------------------------


async def test_cancelled_blocking_call_returns_promptly(
    lifetime_plugin: LoadedPlugin, counters: Lifetimes
) -> None:
    source = await lifetime_plugin.source_plugins[0].create_source("block-1", {"stop_block": True})
    await source.initialize(ctx("block-1"))
    await source.start()
    dropped = counters.read()["dropped"]
    started = time.monotonic()
    with anyio.move_on_after(0.3) as scope:
        await source.stop()
    assert scope.cancelled_caught
    assert time.monotonic() - started < 3
    # The call goes on in its thread: the source is failed, not dropped.
    assert source.closed
    with pytest.raises(ClosedError, match="abandoned"):
        await source.status()
    assert counters.read()["blocked"] >= 1
    with anyio.move_on_after(0.2):
        await source.aclose()  # waits for the blocked call; cancellable
    assert counters.read()["dropped"] == dropped
    assert counters.read()["drops_during_call"] == 0


def test_a_blocked_plugin_call_does_not_keep_the_process_alive(
    lifetime_lib: Path, tmp_path: Path
) -> None:
    script = tmp_path / "blocked.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from pathlib import Path
            import anyio
            from drasi_host import CallbackContext, SourceRuntimeContext
            from drasi_host.loader import load_plugin

            async def main() -> None:
                plugin = load_plugin(Path({str(lifetime_lib)!r}), CallbackContext("x"))
                source = await plugin.source_plugins[0].create_source(
                    "b", {{"stop_block": True}})
                await source.initialize(SourceRuntimeContext("x", "b"))
                await source.start()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(source.stop)      # blocks in the plugin for ever
                    await anyio.sleep(0.2)
                    tg.cancel_scope.cancel()
                print("main done", flush=True)

            anyio.run(main, backend=sys.argv[1])
            """
        )
    )
    for backend in ("asyncio", "trio"):
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-W", "ignore::ResourceWarning", str(script), backend],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "main done" in proc.stdout
        assert time.monotonic() - started < 30


def test_errors_are_drasi_host_errors() -> None:
    assert issubclass(ClosedError, DrasiHostError)
    assert issubclass(LifecycleError, DrasiHostError)
