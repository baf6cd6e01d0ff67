"""Components of FFI 0.13 plugins (ABI-0.13.md sections 3, 5-9): the create
calls' ``FfiCreateResult``, what the 0.13 vtables add, the 96-byte runtime
context, the status values 6 and 7, and the per-generation routing of the
proxies.  The rules both generations share run in the parametrised tests of
``test_lifecycle.py``, ``test_source.py``, ``test_reaction.py`` and
``test_bootstrap.py``."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from generations import stats013

from drasi_host import (
    BootstrapContext,
    BootstrapEvent,
    BootstrapRequest,
    CallbackContext,
    ComponentStatus,
    Credentials,
    DrasiHostError,
    LoadedPlugin,
    PluginCallError,
    PluginProtocolError,
    QueryResult,
    ReactionRuntimeContext,
    RecoveryPolicy,
    ResultDiff,
    SourceRuntimeContext,
    SubscriptionSettings,
    _abi,
    _abi013,
    _msgpack013,
)
from drasi_host.bridges.state_store import MemoryStateStore
from drasi_host.loader import load_plugin
from drasi_host.proxies._generation import GEN_013, GEN_04, generation

pytestmark = pytest.mark.anyio

INSTANCE = "inst013"


@pytest.fixture
def v013_path(fixture_plugins_013: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the 0.13 library with every kind (counters of its own)."""
    dst = tmp_path / fixture_plugins_013["v013_all"].name
    shutil.copy2(fixture_plugins_013["v013_all"], dst)
    return dst


@pytest.fixture
def v013(v013_path: Path, callbacks: CallbackContext) -> Iterator[LoadedPlugin]:
    with load_plugin(v013_path, callbacks) as loaded:
        yield loaded


@pytest.fixture
def hostile(fixture_plugins_013: dict[str, Path], callbacks: CallbackContext) -> Iterator[Any]:
    with load_plugin(fixture_plugins_013["v013_hostile"], callbacks) as loaded:
        yield loaded


# ---- the generation objects -----------------------------------------------------------


def test_generations_are_chosen_by_version() -> None:
    assert generation("0.4") is GEN_04 and generation("0.13") is GEN_013
    assert (GEN_04.abi_version, GEN_013.abi_version) == ("0.4", "0.13")
    assert GEN_013.ffi is _abi013.ffi and GEN_04.ffi is _abi.ffi
    with pytest.raises(DrasiHostError, match=r"'0\.9'"):
        generation("0.9")


@pytest.mark.parametrize("raw", range(-2, 10))
def test_status_values_per_generation(raw: int) -> None:
    if 0 <= raw <= 5:
        assert GEN_04.status(raw, "s") is ComponentStatus(raw)
    else:
        with pytest.raises(PluginProtocolError, match=f"s: {raw} is not a valid ComponentStatus"):
            GEN_04.status(raw, "s")
    if 0 <= raw <= 7:
        assert GEN_013.status(raw, "s") is ComponentStatus(raw)
    else:
        with pytest.raises(PluginProtocolError) as info:
            GEN_013.status(raw, "s")
        assert "ADDED=6" in str(info.value) and "REMOVED=7" in str(info.value)
    assert ComponentStatus.ADDED == 6 and ComponentStatus.REMOVED == 7


def _create_result(code: int, message: bytes | None, ptr: Any = None) -> Any:
    ffi = _abi013.ffi
    value = ffi.new("FfiCreateResult *")
    value.error_code = code
    if message is not None:
        value.error_msg = ffi.cast("char *", _abi.malloc_bytes(message + b"\0"))
    if ptr is not None:
        value.ptr = ptr
    return value[0]


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (1, b"bad config", "bad config"),
        (1, None, "unknown error"),
        (-3, b"negative", "negative"),
        (42, b"\xff\xfeinvalid utf-8", "\ufffd\ufffdinvalid utf-8"),
        (0, None, "factory returned null"),
        (0, b"a message with success", "factory returned null"),
    ],
)
def test_create_results(code: int, message: bytes | None, expected: str) -> None:
    created = GEN_013.created(_create_result(code, message))
    assert not created.ok
    assert (created.message, created.code) == (expected, code)


def test_a_block_with_a_failure_code_is_not_trusted() -> None:
    block = _abi013.ffi.new("char[16]")  # not heap memory: freeing it would crash
    created = GEN_013.created(_create_result(1, b"no", _abi013.ffi.cast("void *", block)))
    assert not created.ok and created.message == "no"


# ---- create calls: typed errors -----------------------------------------------------


@pytest.mark.parametrize("mode", ["fail", "nullptr"])
async def test_hostile_create_modes_are_typed_errors(hostile: LoadedPlugin, mode: str) -> None:
    expected = {"fail": "create refused: mode fail", "nullptr": "factory returned null"}[mode]
    code = {"fail": 1, "nullptr": 0}[mode]
    calls = [
        ("source", hostile.source_plugins[0].create_source("h1", {"mode": mode})),
        (
            "reaction",
            hostile.reaction_plugins[0].create_reaction("h2", ["q1"], {"mode": mode}),
        ),
        ("bootstrap", hostile.bootstrap_plugins[0].create_bootstrap_provider({"mode": mode})),
    ]
    for kind, call in calls:
        with pytest.raises(PluginCallError) as info:
            await call
        err = info.value
        assert err.plugin_message is not None and expected in err.plugin_message, kind
        assert err.code == code
        assert err.plugin == hostile.name
        assert "refused by the plugin" in str(err)
    stats = stats013(hostile.path)
    assert stats["objects_created"] == stats["objects_dropped"]


async def test_refused_creates_leak_nothing_and_name_the_component(v013: LoadedPlugin) -> None:
    before = stats013(v013.path)
    for i in range(20):
        with pytest.raises(PluginCallError) as info:
            await v013.source_plugins[0].create_source(f"no-{i}", {"mode": "fail"})
        assert info.value.component_id == f"no-{i}"
    after = stats013(v013.path)
    assert after["objects_created"] == before["objects_created"]


# ---- instances -------------------------------------------------------------------------


async def test_source_members_of_0_13(v013: LoadedPlugin) -> None:
    async with await v013.source_plugins[0].create_source(
        "s1", {"count": 7, "bootstrap_count": 3}, auto_start=False
    ) as source:
        assert source.abi_version == "0.13"
        assert (source.id, source.type_name, source.auto_start) == ("s1", "fixture013", False)
        assert source.properties() == {"count": 7, "bootstrap_count": 3}
        assert source.describe_schema() is None  # the fixture describes none
        assert source.supports_replay is False
        await source.initialize(SourceRuntimeContext(INSTANCE, "s1"))
        assert await source.status() is ComponentStatus.ADDED


async def test_reaction_members_of_0_13(v013: LoadedPlugin) -> None:
    async with await v013.reaction_plugins[0].create_reaction("r1", ["q1"]) as reaction:
        assert reaction.abi_version == "0.13"
        assert reaction.properties() == {}
        assert reaction.is_durable is False
        assert reaction.needs_snapshot_on_fresh_start is False
        assert reaction.default_recovery_policy is RecoveryPolicy.STRICT


async def test_0_4_objects_have_none_of_the_0_13_members(
    fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    with load_plugin(fixture_plugins["multi"], callbacks) as plugin:
        async with await plugin.source_plugins[0].create_source("s") as source:
            assert source.abi_version == "0.4"
            assert source.properties() is None
            assert source.describe_schema() is None
            assert source.supports_replay is None
        async with await plugin.reaction_plugins[0].create_reaction("r", ["q"]) as reaction:
            assert reaction.properties() is None
            assert reaction.is_durable is None
            assert reaction.needs_snapshot_on_fresh_start is None
            assert reaction.default_recovery_policy is None
        provider = await plugin.bootstrap_plugins[0].create_bootstrap_provider()
        assert provider.abi_version == "0.4"
        await provider.aclose()


async def test_initialize_hands_over_the_state_store(v013: LoadedPlugin) -> None:
    store = MemoryStateStore()
    async with await v013.source_plugins[0].create_source("st1") as source:
        await source.initialize(SourceRuntimeContext(INSTANCE, "st1", state_store=store))
        await source.start()  # the fixture writes and reads back one key
        assert stats013(v013.path)["state_store_ops"] == 2
        assert store.get("st1", "started") == b"yes"
        await source.stop()


async def test_lifecycle_callbacks_are_routed_per_instance(
    v013: LoadedPlugin, callbacks: CallbackContext
) -> None:
    async with await v013.source_plugins[0].create_source("cb1") as source:
        await source.initialize(SourceRuntimeContext(INSTANCE, "cb1"))
        await source.start()
        await source.stop()
        assert source.callback_context is not None
    events = callbacks.source_event_history.get("cb1")
    assert [e.status for e in events] == [ComponentStatus.RUNNING, ComponentStatus.STOPPED]


async def test_every_object_is_dropped_once(v013: LoadedPlugin) -> None:
    source = await v013.source_plugins[0].create_source("d1")
    reaction = await v013.reaction_plugins[0].create_reaction("d2", ["q1"])
    provider = await v013.bootstrap_plugins[0].create_bootstrap_provider({"count": 2})
    await source.initialize(SourceRuntimeContext(INSTANCE, "d1"))
    await reaction.initialize(ReactionRuntimeContext(INSTANCE, "d2"))
    await source.start()
    await reaction.start()
    for obj in (source, reaction, provider):
        await obj.aclose()
        await obj.aclose()
    stats = stats013(v013.path)
    assert stats["objects_created"] == stats["objects_dropped"] == 3


# ---- bootstrap providers between plugins ---------------------------------------------


async def test_a_provider_never_crosses_generations(
    v013: LoadedPlugin, fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    with load_plugin(fixture_plugins["multi"], callbacks) as v04:
        source04 = await v04.source_plugins[0].create_source("s04")
        provider04 = await v04.bootstrap_plugins[0].create_bootstrap_provider()
        source13 = await v013.source_plugins[0].create_source("s13")
        provider13 = await v013.bootstrap_plugins[0].create_bootstrap_provider()
        for source, provider in ((source13, provider04), (source04, provider13)):
            with pytest.raises(DrasiHostError) as info:
                await source.set_bootstrap_provider(provider)
            text = str(info.value)
            assert source.label in text and provider.label in text
            assert "FFI 0.4" in text and "FFI 0.13" in text
            assert info.value.component_id == source.id
        assert stats013(v013.path)["providers_adopted"] == 0
        for obj in (source04, provider04, source13, provider13):
            await obj.aclose()
        assert not provider04._life.holds and not provider13._life.holds


async def test_a_0_13_provider_is_leased_to_a_0_13_source(v013: LoadedPlugin) -> None:
    provider = await v013.bootstrap_plugins[0].create_bootstrap_provider({"count": 2})
    source = await v013.source_plugins[0].create_source("lease")
    await source.set_bootstrap_provider(provider)
    assert stats013(v013.path)["providers_adopted"] == 1
    await provider.aclose()  # returns; the source still holds it
    assert provider.closed and not provider._life.released
    assert stats013(v013.path)["objects_dropped"] == 0
    await source.aclose()  # drops the host-built vtable: the lease ends
    assert provider._life.wait_released(5)
    assert stats013(v013.path)["objects_dropped"] == 2


# ---- subscriptions, hostile payloads --------------------------------------------------


async def drain_with_errors(receiver: Any) -> list[Any]:
    """Every item of a receiver: events, and the errors raised in their place."""
    out: list[Any] = []
    iterator = receiver.__aiter__()
    while True:
        try:
            out.append(await iterator.__anext__())
        except StopAsyncIteration:
            return out
        except PluginProtocolError as exc:
            out.append(exc)


async def _running(plugin: LoadedPlugin, sid: str, config: dict[str, Any]) -> Any:
    source = await plugin.source_plugins[0].create_source(sid, config)
    await source.initialize(SourceRuntimeContext(INSTANCE, sid))
    await source.start()
    return source


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("badmsgpack", "undecodable event dropped"),
        ("wrongtags", "undecodable event dropped"),
        ("oversize", "exceeds the maximum"),
        ("nullpayload", "empty or NULL payload"),
        ("nulldrop", "undecodable event dropped"),
    ],
)
async def test_hostile_events_are_typed_errors_and_the_stream_goes_on(
    hostile: LoadedPlugin, mode: str, problem: str
) -> None:
    before = stats013(hostile.path)
    leaked = _abi013.leaked_payloads()
    source = await _running(hostile, f"h-{mode}", {"count": 8, "mode": mode})
    async with source:
        response = await source.subscribe(SubscriptionSettings(f"h-{mode}", "q1", False, [], []))
        async with response.receiver as receiver:
            items = await drain_with_errors(receiver)
    errors = [i for i in items if isinstance(i, Exception)]
    events = [i for i in items if not isinstance(i, Exception)]
    assert len(errors) == 1 and problem in str(errors[0])
    assert items[0] is errors[0]  # in the place of the hostile event
    # wrongtags spoils the first of the 8 events; the other modes add one first
    assert len(events) == (7 if mode == "wrongtags" else 8)
    assert all(e.change is not None for e in events)
    after = stats013(hostile.path)
    made = after["payloads_created"] - before["payloads_created"]
    released = after["payloads_released"] - before["payloads_released"]
    assert made == released  # every payload with a drop function released once
    assert _abi013.leaked_payloads() - leaked == (1 if mode == "nulldrop" else 0)


async def test_control_events_arrive_as_control(v013: LoadedPlugin) -> None:
    source = await _running(v013, "ctl", {"count": 4, "mode": "control"})
    async with source:
        response = await source.subscribe(SubscriptionSettings("ctl", "q1", False, [], []))
        async with response.receiver as receiver:
            events = [e async for e in receiver]
    assert len(events) == 6
    assert all(e.control is None and e.change is not None for e in events[:4])
    assert [e.control.kind for e in events[4:] if e.control] == ["FuturesDue", "Future"]
    assert all(e.change is None for e in events[4:])


async def test_a_null_subscription_is_a_plugin_call_error(hostile: LoadedPlugin) -> None:
    source = await _running(hostile, "h-nosub", {"mode": "nullsubscribe"})
    async with source:
        with pytest.raises(PluginCallError, match=r"subscribe\('q1'\) failed") as info:
            await source.subscribe(SubscriptionSettings("h-nosub", "q1", True, [], []))
        assert info.value.component_id == "h-nosub"


async def test_a_subscription_bootstraps_through_a_leased_provider(v013: LoadedPlugin) -> None:
    provider = await v013.bootstrap_plugins[0].create_bootstrap_provider({"mode": "bootfail"})
    source = await _running(v013, "bf", {"count": 1})
    async with source, provider:
        await source.set_bootstrap_provider(provider)
        response = await source.subscribe(SubscriptionSettings("bf", "q1", True, [], []))
        assert response.bootstrap_receiver is not None
        async with response.bootstrap_receiver as boot:
            with pytest.raises(PluginCallError, match="bootstrap failed") as info:
                _ = [e async for e in boot]
            assert info.value.plugin_message == "fixture013 bootstrap failed: source unavailable"
            assert info.value.code == -1
            assert boot.outcome is not None and boot.outcome.failed
            assert [e async for e in boot] == []  # reported once; then the end
        await response.aclose()
    stats = stats013(v013.path)
    assert stats["payloads_created"] == stats["payloads_released"]
    assert stats["receivers_created"] == stats["receivers_dropped"]


# ---- bootstrap providers: hostile streams -------------------------------------------------


async def _bootstrap(provider: Any) -> tuple[int, list[Any]]:
    tx, rx = anyio.create_memory_object_stream[Any](1000)
    async with tx, rx:
        count = await provider.bootstrap(
            BootstrapRequest("q1", [], [], "req"), BootstrapContext("srv", "src"), tx
        )
        return count, [rx.receive_nowait() for _ in range(rx.statistics().current_buffer_used)]


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("nullstream", PluginCallError, "could not start"),
        ("halfstream", PluginCallError, "no events receiver"),
        ("badmsgpack", PluginProtocolError, "undecodable event"),
        ("wrongtags", PluginProtocolError, "undecodable event"),
        ("oversize", PluginProtocolError, "exceeds the maximum"),
    ],
)
async def test_hostile_provider_streams_are_typed_errors(
    hostile: LoadedPlugin, mode: str, error: type[Exception], text: str
) -> None:
    before = stats013(hostile.path)
    async with await hostile.bootstrap_plugins[0].create_bootstrap_provider(
        {"count": 3, "mode": mode}
    ) as provider:
        with pytest.raises(error, match=text) as info:
            await _bootstrap(provider)
        assert getattr(info.value, "plugin", None) == hostile.name
    after = await _settled(hostile.path)
    assert after["payloads_created"] - before["payloads_created"] == (
        after["payloads_released"] - before["payloads_released"]
    )
    assert after["receivers_created"] - before["receivers_created"] == (
        after["receivers_dropped"] - before["receivers_dropped"]
    )


async def _settled(path: Path) -> dict[str, int]:
    """The counters once every payload and receiver is released (plugin
    threads may lag)."""
    with anyio.move_on_after(5):
        while True:
            s = stats013(path)
            if (
                s["payloads_created"] == s["payloads_released"]
                and s["receivers_created"] == s["receivers_dropped"]
            ):
                break
            await anyio.sleep(0.01)
    return stats013(path)


async def test_a_stream_without_a_result_returns_what_arrived(
    v013: LoadedPlugin, caplog: pytest.LogCaptureFixture
) -> None:
    async with await v013.bootstrap_plugins[0].create_bootstrap_provider(
        {"count": 4, "mode": "noresult"}
    ) as provider:
        count, events = await _bootstrap(provider)
    assert count == len(events) == 4
    assert any("ended without a result" in r.getMessage() for r in caplog.records)


# ---- reactions: the exit sentinel -------------------------------------------------------


async def test_a_reaction_without_exit_sentinel_is_leaked_not_dropped(
    hostile: LoadedPlugin, caplog: pytest.LogCaptureFixture
) -> None:
    before = stats013(hostile.path)
    reaction = await hostile.reaction_plugins[0].create_reaction(
        "nos", ["q1"], {"mode": "nosentinel"}
    )
    await reaction.initialize(ReactionRuntimeContext(INSTANCE, "nos"))
    await reaction.start()
    result = QueryResult("q1", datetime.now(timezone.utc), [ResultDiff.add({"a": 1})])
    await reaction.enqueue_query_result(result)
    assert await reaction.flush(5)
    started = time.monotonic()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        await reaction.stop()  # waits up to 5 s for the sentinel, off the loop
        tg.cancel_scope.cancel()
    waited = time.monotonic() - started
    assert 4.5 <= waited < 15 and ticks >= 40  # the loop kept running meanwhile
    assert any("no exit sentinel" in r.getMessage() for r in caplog.records)
    await reaction.aclose()
    assert any("leaked" in r.getMessage() for r in caplog.records)
    after = stats013(hostile.path)
    assert after["objects_dropped"] == before["objects_dropped"]  # leaked, never dropped
    assert after["exit_sentinels_sent"] == before["exit_sentinels_sent"]


# ---- host services in the runtime context ---------------------------------------------


async def test_a_0_13_source_gets_a_host_identity_provider(v013: LoadedPlugin) -> None:
    seen: list[dict[str, str]] = []

    class Provider:
        def get_credentials(self, context: dict[str, str]) -> Credentials:
            seen.append(context)
            return Credentials.token("svc", "secret-token")

    async with await v013.source_plugins[0].create_source("id13") as source:
        await source.initialize(
            SourceRuntimeContext(INSTANCE, "id13", identity_provider=Provider())
        )
        await source.start()  # asks for credentials once and clones the provider
        await source.stop()
    assert seen == [{"host": "db.example"}]
    stats = stats013(v013.path)
    assert stats["foreign_identity_calls"] == 1
    assert stats["foreign_identity_dropped"] == 2  # the state and its clone, once each


async def test_a_0_13_reaction_gets_a_snapshot_fetcher(v013: LoadedPlugin) -> None:
    class Fetcher:
        def fetch_snapshot(self, query_id: str) -> list[dict[str, Any]]:
            return [{"id": 1}]

    reaction = await v013.reaction_plugins[0].create_reaction("snap", ["q1"])
    await reaction.initialize(ReactionRuntimeContext(INSTANCE, "snap", snapshot_fetcher=Fetcher()))
    handles = [s for s in reaction._services if type(s).__name__ == "SnapshotFetcherHandle"]
    assert len(handles) == 1
    await reaction.aclose()  # the plugin drops the fetcher in its drop_fn
    assert handles[0].drop_calls == 1 and handles[0].closed


async def test_a_0_4_reaction_ignores_a_snapshot_fetcher(
    fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> None:
    class Fetcher:
        def fetch_snapshot(self, query_id: str) -> list[dict[str, Any]]:
            raise AssertionError("never called")

    with load_plugin(fixture_plugins["reaction"], callbacks) as plugin:
        async with await plugin.reaction_plugins[0].create_reaction("r", ["q1"]) as reaction:
            await reaction.initialize(
                ReactionRuntimeContext(INSTANCE, "r", snapshot_fetcher=Fetcher())
            )
            assert not any(type(s).__name__ == "SnapshotFetcherHandle" for s in reaction._services)


# ---- both generations in one pipeline ---------------------------------------------------


async def test_components_of_both_generations_work_together_through_python(
    v013: LoadedPlugin,
    fixture_plugins: dict[str, Path],
    fixture_stats_reader: Any,
    callbacks: CallbackContext,
    tmp_path: Path,
) -> None:
    """A 0.4 source feeding a 0.13 reaction, and a 0.13 source feeding a 0.4
    reaction, with Python turning events into query results."""
    reaction04_lib = tmp_path / fixture_plugins["reaction"].name
    shutil.copy2(fixture_plugins["reaction"], reaction04_lib)

    async def pipe(source: Any, reaction: Any) -> int:
        response = await source.subscribe(SubscriptionSettings(source.id, "q1", False, [], []))
        sent = 0
        async with response.receiver as receiver:
            async for event in receiver:
                change = event.change
                assert change is not None
                diff = ResultDiff.add({"id": event.entity_id, "op": change.op.wire})
                now = datetime.now(timezone.utc)
                await reaction.enqueue_query_result(QueryResult("q1", now, [diff]))
                sent += 1
        assert await reaction.flush(10)
        return sent

    with (
        load_plugin(fixture_plugins["source"], callbacks) as source04_plugin,
        load_plugin(reaction04_lib, callbacks) as reaction04_plugin,
    ):
        source04 = await _running(source04_plugin, "s04", {"event_count": 6})
        source13 = await _running(v013, "s13", {"count": 5})
        reaction13 = await v013.reaction_plugins[0].create_reaction("r13", ["q1"])
        reaction04 = await reaction04_plugin.reaction_plugins[0].create_reaction("r04", ["q1"])
        await reaction13.initialize(ReactionRuntimeContext(INSTANCE, "r13"))
        await reaction04.initialize(ReactionRuntimeContext(INSTANCE, "r04"))
        await reaction13.start()
        await reaction04.start()
        assert await pipe(source04, reaction13) == 6
        assert await pipe(source13, reaction04) == 5
        for obj in (reaction13, reaction04, source04, source13):
            await obj.aclose()
    stats = stats013(v013.path)
    assert stats["results_decoded"] == stats["results_received"] == 6
    assert stats["result_diffs"] == 6
    assert fixture_stats_reader(reaction04_lib)["results_received"] == 5


async def test_a_host_made_stream_driven_the_way_a_plugin_drives_it() -> None:
    """The host-made 0.13 provider of a Python provider, called directly:
    a run whose events receiver is dropped unstarted ends with a result of
    0 events; a consumed run delivers its events, one NULL, then its count;
    every host-made state is forgotten once both receivers are dropped."""
    from drasi_host._callbacks import handles
    from drasi_host.proxies.bootstrap import (
        build_host_provider_vtable013,
        discard_provider_vtable013,
    )

    ffi = _abi013.ffi

    class Provider:
        async def bootstrap(self, request: Any, context: Any, event_tx: Any) -> int:
            for i in range(3):
                change = _model_change(context.source_id, i)
                await event_tx.send(BootstrapEvent.from_change(change, sequence=i + 1))
            return 3

    before = set(handles._objects)
    vt = build_host_provider_vtable013(Provider(), label="python provider")
    results: list[Any] = []
    pushed: list[Any] = []
    done = threading.Event()

    @ffi.callback("void (*)(void *, FfiBootstrapResult *)")
    def on_result(ctx: Any, result: Any) -> None:
        results.append(None if result == ffi.NULL else int(result.event_count))
        if result != ffi.NULL:
            _abi013.lib.dh13_bootstrap_result_release(result)
        done.set()

    @ffi.callback("bool (*)(void *, FfiBootstrapEvent *)")
    def on_event(ctx: Any, event: Any) -> bool:
        if event == ffi.NULL:
            pushed.append(None)
            return True
        data = ffi.buffer(event.payload_ptr, event.payload_len)[:]
        pushed.append(_msgpack013.decode_bootstrap_event(data).sequence)
        _abi013.lib.dh13_bootstrap_event_release(event)
        return True

    def run(start_events: bool) -> None:
        keep = [ffi.new("char[]", b"q1"), ffi.new("char[]", b"s1")]
        q = ffi.new("FfiStr *", [keep[0], 2])[0]
        s = ffi.new("FfiStr *", [keep[1], 2])[0]
        stream = vt.bootstrap_fn(vt.state, q, ffi.NULL, 0, ffi.NULL, 0, q, q, s)
        assert stream != ffi.NULL
        events, result = stream.events, stream.result
        _abi.lib.free(stream)
        result.start_fn(result.state, on_result, ffi.NULL)
        result.drop_fn(result.state)  # the state may go right after start_fn
        if start_events:
            events.start_push_fn(events.state, on_event, ffi.NULL)
            assert done.wait(10)
        events.drop_fn(events.state)
        _abi.lib.free(events)
        _abi.lib.free(result)

    await anyio.to_thread.run_sync(run, False)
    assert done.wait(10) and results == [0] and pushed == []
    done.clear()
    await anyio.to_thread.run_sync(run, True)
    assert results == [0, 3]
    assert pushed == [1, 2, 3, None]
    discard_provider_vtable013(vt)
    with anyio.fail_after(5):
        while set(handles._objects) != before:
            await anyio.sleep(0.01)


def _model_change(source_id: str, i: int) -> Any:
    from drasi_host import ChangeOp, Element, ElementReference, SourceChange

    return SourceChange(
        ChangeOp.INSERT,
        Element("node", ElementReference(source_id, f"py-{i}"), ["Person"], i, {"i": i}),
    )
