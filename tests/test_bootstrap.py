"""Bootstrap providers against the real fixture plugins, both ways: a plugin's
provider driven from Python (BootstrapProviderProxy), and providers handed to
a source plugin with set_bootstrap_provider (a pure-Python provider, and a
BootstrapProviderProxy of another plugin)."""

from __future__ import annotations

import collections
import gc
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from generations import Gen
from lifetime_helpers import eventually

from drasi_host import (
    BootstrapContext,
    BootstrapEvent,
    BootstrapProviderProxy,
    BootstrapRequest,
    CallbackContext,
    ChangeOp,
    DrasiHostError,
    Element,
    ElementReference,
    PayloadFormatError,
    PluginCallError,
    SourceChange,
    SourceRuntimeContext,
    SubscriptionSettings,
)
from drasi_host._abi import Borrowed, ctx_key, ffi, lib
from drasi_host._callbacks import handles
from drasi_host.loader import load_plugin
from drasi_host.payloads import codec_for
from drasi_host.proxies.bootstrap import build_provider_vtable
from drasi_host.proxies.receivers import EventChannel

pytestmark = pytest.mark.anyio

REQUEST = BootstrapRequest("q1", ["Person", "City"], ["LIVES_IN"], "req-7")
CONTEXT = BootstrapContext("server-1", "src-1")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Stats:
    def __init__(self, read: Callable[[Path], dict[str, int]], path: Path) -> None:
        self._read = read
        self._path = path
        self._before = read(path)

    def delta(self) -> dict[str, int]:
        now = self._read(self._path)
        return {k: now[k] - self._before[k] for k in now}


@pytest.fixture
def boot_stats(
    fixture_stats_reader: Callable[[Path], dict[str, int]], fixture_plugins: dict[str, Path]
) -> Stats:
    return Stats(fixture_stats_reader, fixture_plugins["bootstrap"])


@pytest.fixture
def source_stats(
    fixture_stats_reader: Callable[[Path], dict[str, int]], fixture_plugins: dict[str, Path]
) -> Stats:
    return Stats(fixture_stats_reader, fixture_plugins["source"])


@pytest.fixture
async def make_provider(
    fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> AsyncIterator[Callable[..., Any]]:
    plugin = load_plugin(fixture_plugins["bootstrap"], callbacks)
    created: list[BootstrapProviderProxy] = []

    async def make(config: dict[str, Any]) -> BootstrapProviderProxy:
        provider = await plugin.bootstrap_plugins[0].create_bootstrap_provider(config, {"s": 1})
        created.append(provider)
        return provider

    yield make
    for provider in created:
        await provider.aclose()


@pytest.fixture
async def make_gen_provider(
    gen: Gen, callbacks: CallbackContext
) -> AsyncIterator[Callable[..., Any]]:
    """Providers of each generation's bootstrap fixture."""
    plugin = load_plugin(gen.bootstrap_lib, callbacks)
    created: list[BootstrapProviderProxy] = []

    async def make(config: dict[str, Any]) -> BootstrapProviderProxy:
        provider = await plugin.bootstrap_plugins[0].create_bootstrap_provider(config, {"s": 1})
        assert provider.abi_version == gen.abi
        created.append(provider)
        return provider

    yield make
    for provider in created:
        await provider.aclose()
    plugin.close()


async def settle(read: Callable[[], tuple[int, int]]) -> tuple[int, int]:
    """Poll (made, released) until they agree (plugin threads may lag)."""
    with anyio.move_on_after(5):
        while (got := read())[0] != got[1]:
            await anyio.sleep(0.01)
    return read()


class Payloads:
    """A generation's payload counters, as a delta since creation."""

    def __init__(self, gen: Gen) -> None:
        self._gen = gen
        self._before = gen.payloads(gen.bootstrap_lib)

    def delta(self) -> tuple[int, int]:
        made, released = self._gen.payloads(self._gen.bootstrap_lib)
        return made - self._before[0], released - self._before[1]


async def collect(
    provider: Any,
    request: BootstrapRequest = REQUEST,
    context: BootstrapContext = CONTEXT,
    *,
    buffer: int = 0,
) -> tuple[int, list[BootstrapEvent]]:
    """Run a bootstrap into a stream and read everything from the other end."""
    tx, rx = anyio.create_memory_object_stream[BootstrapEvent](buffer)
    events: list[BootstrapEvent] = []

    async def consume() -> None:
        async with rx:
            async for event in rx:
                events.append(event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        async with tx:
            count = await provider.bootstrap(request, context, tx)
    return count, events


# ---- a plugin's provider driven from Python -----------------------------------


async def test_bootstrap_streams_every_record(
    make_gen_provider: Callable[..., Any], gen: Gen
) -> None:
    payloads = Payloads(gen)
    provider = await make_gen_provider({"count": 300})
    provider.event_capacity = 4  # the plugin waits in its push for the consumer
    count, events = await collect(provider)
    assert count == 300
    first = gen.first_sequence
    assert [e.sequence for e in events] == list(range(first, first + 300))
    # 0.4: nodes n<i> labelled with the first requested node label; 0.13: b<i>, Boot.
    prefix, label = ("n", "Person") if gen.abi == "0.4" else ("b", "Boot")
    assert [e.entity_id for e in events] == [f"{prefix}{i}" for i in range(300)]
    for i, event in enumerate(events):
        assert event.source_id == "src-1"
        assert event.label == label
        change = event.change
        assert change is not None
        assert change.op is ChangeOp.INSERT
        assert change.element.reference == ElementReference("src-1", f"{prefix}{i}")
        assert change.element.labels == (label,)
        assert change.element.properties["i"] == i
    made, released = payloads.delta()
    assert made == released >= 300


async def test_bootstrap_does_not_close_the_callers_stream(
    make_provider: Callable[..., Any],
) -> None:
    provider = await make_provider({"count": 3, "label": "Thing"})
    tx, rx = anyio.create_memory_object_stream[BootstrapEvent](100)
    async with tx, rx:
        assert await provider.bootstrap(REQUEST, CONTEXT, tx) == 3
        assert await provider.bootstrap(REQUEST, CONTEXT, tx) == 3
        await tx.send(BootstrapEvent.from_change(_change(99), sequence=99))
        labels = [rx.receive_nowait().label for _ in range(7)]
    assert labels == ["Thing"] * 6 + ["Person"]


async def test_early_close_of_the_receiver_returns_the_count_so_far(
    make_gen_provider: Callable[..., Any], gen: Gen
) -> None:
    payloads = Payloads(gen)
    provider = await make_gen_provider({"count": 100_000})
    provider.event_capacity = 8
    tx, rx = anyio.create_memory_object_stream[BootstrapEvent](0)
    received: list[BootstrapEvent] = []

    async def consume() -> None:
        async with rx:
            async for event in rx:
                received.append(event)
                if len(received) == 5:
                    break

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            async with tx:
                count = await provider.bootstrap(REQUEST, CONTEXT, tx)
    assert len(received) == 5
    assert 5 <= count < 100_000
    # Records sent but never read, and the one refused, were all released.
    made, released = await settle(payloads.delta)
    assert made == released
    assert count + 1 <= made < 100_000


async def test_cancelled_bootstrap_stops_the_plugin(
    make_gen_provider: Callable[..., Any], gen: Gen
) -> None:
    payloads = Payloads(gen)
    provider = await make_gen_provider({"count": 2000})
    provider.event_capacity = 4
    tx, rx = anyio.create_memory_object_stream[BootstrapEvent](0)
    started = time.monotonic()
    async with tx, rx:
        with anyio.move_on_after(0.1) as scope:
            await provider.bootstrap(REQUEST, CONTEXT, tx)  # nobody reads: the plugin blocks
    assert scope.cancelled_caught
    assert time.monotonic() - started < 5
    made, released = await settle(payloads.delta)
    assert 0 < made == released < 2000
    # The provider is still usable afterwards.
    assert (await collect(provider))[0] == 2000


async def test_plugin_failure_is_a_plugin_call_error(
    make_gen_provider: Callable[..., Any], gen: Gen, callbacks: CallbackContext
) -> None:
    provider = await make_gen_provider(gen.bootstrap_fail_config)
    tx, rx = anyio.create_memory_object_stream[BootstrapEvent](10)
    async with tx, rx:
        with pytest.raises(PluginCallError, match="bootstrap for query 'q1' failed") as info:
            await provider.bootstrap(REQUEST, CONTEXT, tx)
    assert info.value.error_code == -1
    assert gen.bootstrap_lib.name in str(info.value)
    assert info.value.plugin == gen.bootstrap_lib.name
    if gen.abi != "0.4":  # the provider's own text, from its result
        assert info.value.plugin_message == gen.bootstrap_fail_text
        return
    logged = [
        m.message
        for key in callbacks.log_registry.components()
        for m in callbacks.log_registry.get(*key)
    ]
    assert any("'fail' is set" in m for m in logged)


async def test_provider_is_dropped_exactly_once(
    make_gen_provider: Callable[..., Any], gen: Gen, tmp_path: Path
) -> None:
    counter = gen.dropped_counters["bootstrap"]
    before = gen.read_stats(gen.bootstrap_lib)[counter]

    def dropped() -> int:
        return gen.read_stats(gen.bootstrap_lib)[counter] - before

    provider = await make_gen_provider({"count": 1})
    assert not provider.closed
    await provider.aclose()
    await provider.aclose()
    assert provider.closed
    tx, rx = anyio.create_memory_object_stream[BootstrapEvent](10)
    async with tx, rx:
        with pytest.raises(DrasiHostError, match="closed"):
            await provider.bootstrap(REQUEST, CONTEXT, tx)
    assert dropped() == 1

    async with await make_gen_provider({"count": 1}) as second:
        assert (await collect(second))[0] == 1
    assert dropped() == 2

    plugin = load_plugin(gen.bootstrap_lib, CallbackContext("gc"))
    third = await plugin.bootstrap_plugins[0].create_bootstrap_provider({}, {})
    with pytest.warns(ResourceWarning):
        del third
        for _ in range(3):
            gc.collect()
    assert eventually(lambda: dropped() == 3)
    plugin.close()


async def test_aclose_during_a_bootstrap_waits_for_it(
    make_provider: Callable[..., Any], boot_stats: Stats
) -> None:
    provider = await make_provider({"count": 50})
    provider.event_capacity = 1
    tx, rx = anyio.create_memory_object_stream[BootstrapEvent](0)
    counts: list[int] = []

    async def run() -> None:
        async with tx:
            counts.append(await provider.bootstrap(REQUEST, CONTEXT, tx))

    closed = anyio.Event()

    async def close() -> None:
        await provider.aclose()  # waits for the bootstrap in flight
        closed.set()

    async with anyio.create_task_group() as tg, rx:
        tg.start_soon(run)
        await rx.receive()
        tg.start_soon(close)
        with anyio.fail_after(10):
            while not provider.closed:
                await anyio.sleep(0.001)
        # In use: the plugin object stays alive, aclose() waits.
        assert boot_stats.delta()["providers_dropped"] == 0
        assert not closed.is_set()
        rest = [event async for event in rx]
    assert closed.is_set()
    assert counts == [50]
    assert len(rest) == 49
    assert boot_stats.delta()["providers_dropped"] == 1


# ---- providers handed to a source plugin --------------------------------------


def _change(i: int, source_id: str = "py") -> SourceChange:
    return SourceChange(
        ChangeOp.INSERT,
        Element(
            "node",
            ElementReference(source_id, f"py-{i}"),
            ["Person"],
            1_700_000_000_000 + i,
            {"i": i, "name": f"Py {i}", "nested": {"ok": True}, "list": [1, 2.5, None]},
        ),
    )


class PythonProvider:
    """A pure-Python bootstrap provider."""

    def __init__(self, count: int, *, fail_after: int | None = None) -> None:
        self.count = count
        self.fail_after = fail_after
        self.calls: list[tuple[BootstrapRequest, BootstrapContext]] = []
        self.finished = anyio.Event()
        self.cancelled = False

    async def bootstrap(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int:
        self.calls.append((request, context))
        try:
            for i in range(self.count):
                if self.fail_after is not None and i == self.fail_after:
                    raise RuntimeError("provider exploded")
                await event_tx.send(
                    BootstrapEvent.from_change(
                        _change(i, context.source_id), sequence=i, timestamp_us=1000 + i
                    )
                )
            return self.count
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        finally:
            self.finished.set()


@pytest.fixture
async def make_source(
    fixture_plugins: dict[str, Path], callbacks: CallbackContext
) -> AsyncIterator[Callable[..., Any]]:
    created: list[Any] = []

    async def make(
        name: str = "source", config: dict[str, Any] | None = None, sid: str = "src-1"
    ) -> Any:
        plugin = load_plugin(fixture_plugins[name], callbacks)
        source = await plugin.source_plugins[0].create_source(sid, config or {"event_count": 0})
        created.append(source)
        await source.initialize(SourceRuntimeContext("test", sid))
        return source

    yield make
    for source in created:
        await source.aclose()


@pytest.fixture
async def make_gen_source(
    gen: Gen, callbacks: CallbackContext
) -> AsyncIterator[Callable[..., Any]]:
    """Sources of each generation's source fixture, with no change events."""
    created: list[Any] = []
    plugins: list[Any] = []

    async def make(sid: str = "src-1") -> Any:
        plugin = load_plugin(gen.source_lib, callbacks)
        plugins.append(plugin)
        source = await plugin.source_plugins[0].create_source(sid, gen.source_config(0))
        created.append(source)
        await source.initialize(SourceRuntimeContext("test", sid))
        return source

    yield make
    for source in created:
        await source.aclose()
    for plugin in plugins:
        plugin.close()


async def _bootstrap_via(source: Any, query_id: str = "q1") -> list[BootstrapEvent]:
    resp = await source.subscribe(
        SubscriptionSettings(source.id, query_id, True, ["Person"], ["KNOWS"])
    )
    assert resp.bootstrap_receiver is not None
    events: list[BootstrapEvent] = []
    with anyio.fail_after(20):
        async with resp.receiver, resp.bootstrap_receiver as boot:
            async for event in boot:
                events.append(event)
    return events


async def test_python_provider_feeds_a_source_plugin(
    make_gen_source: Callable[..., Any], gen: Gen
) -> None:
    source = await make_gen_source()
    adopted = gen.read_stats(gen.source_lib).get(
        "providers_adopted" if gen.abi != "0.4" else "foreign_providers_dropped", 0
    )
    before = set(handles._objects)
    provider = PythonProvider(150)
    await source.set_bootstrap_provider(provider)
    (key,) = set(handles._objects) - before  # the state key of the host-built vtable

    events = await _bootstrap_via(source)
    assert len(events) == 150
    request, context = provider.calls[0]
    assert request.query_id == "q1"
    if gen.abi == "0.4":
        assert request.node_labels == ("Person",)
        assert request.relation_labels == ("KNOWS",)
        assert request.request_id == "req-1"
        assert context == BootstrapContext("fixture-server", "src-1")
    else:  # what the 0.13 fixture source asks (NULL label arrays read as empty)
        assert (request.node_labels, request.relation_labels) == ((), ())
        assert request.request_id == "req"
        assert context == BootstrapContext("fixture013", "src-1")
        assert gen.read_stats(gen.source_lib)["providers_adopted"] == adopted + 1
    for i, event in enumerate(events):
        assert event.sequence == i
        assert event.timestamp_us == 1000 + i
        assert (event.source_id, event.label, event.entity_id) == ("src-1", "Person", f"py-{i}")
        assert event.change == _change(i, "src-1")

    # A second subscription bootstraps again through the same provider.
    assert len(await _bootstrap_via(source, "q2")) == 150
    assert [r.query_id for r, _ in provider.calls] == ["q1", "q2"]

    await source.aclose()
    if gen.abi == "0.4":
        assert gen.read_stats(gen.source_lib)["foreign_providers_dropped"] == adopted + 1
    assert key not in handles  # the source dropped the host-built vtable


async def test_python_provider_failure_ends_the_stream(
    make_gen_source: Callable[..., Any], gen: Gen, caplog: pytest.LogCaptureFixture
) -> None:
    source = await make_gen_source()
    await source.set_bootstrap_provider(PythonProvider(100, fail_after=10))
    if gen.abi == "0.4":
        events = await _bootstrap_via(source)
    else:  # 0.13: the events, then the failed end-of-bootstrap result
        resp = await source.subscribe(SubscriptionSettings(source.id, "q1", True, [], []))
        assert resp.bootstrap_receiver is not None
        events = []
        with anyio.fail_after(20), pytest.raises(PluginCallError) as info:
            async with resp.receiver, resp.bootstrap_receiver as boot:
                async for event in boot:
                    events.append(event)
        assert info.value.code == -1
        assert "bootstrap provider failed" in (info.value.plugin_message or "")
    assert [e.entity_id for e in events] == [f"py-{i}" for i in range(10)]
    assert "provider exploded" in caplog.text


async def test_source_closing_early_cancels_the_python_provider(
    make_gen_source: Callable[..., Any],
) -> None:
    source = await make_gen_source()
    provider = PythonProvider(1_000_000)
    await source.set_bootstrap_provider(provider)
    resp = await source.subscribe(SubscriptionSettings(source.id, "q1", True, ["Person"], []))
    assert resp.bootstrap_receiver is not None
    with anyio.fail_after(20):
        async with resp.receiver, resp.bootstrap_receiver as boot:
            got = 0
            async for _event in boot:
                got += 1
                if got == 20:
                    break
        await provider.finished.wait()
    assert provider.cancelled


async def test_plugin_provider_proxy_feeds_a_source_plugin(
    make_gen_source: Callable[..., Any],
    make_gen_provider: Callable[..., Any],
    gen: Gen,
) -> None:
    counter = gen.dropped_counters["bootstrap"]
    dropped = gen.read_stats(gen.bootstrap_lib)[counter]
    payloads = Payloads(gen)
    source = await make_gen_source()
    provider = await make_gen_provider({"count": 120, "label": "Person"})
    await source.set_bootstrap_provider(provider)
    # The source holds the provider: closing our reference keeps it alive.
    await provider.aclose()
    assert gen.read_stats(gen.bootstrap_lib)[counter] == dropped

    events = await _bootstrap_via(source)
    assert len(events) == 120
    # 0.4: nodes n<i> labelled as configured; 0.13: b<i>, Boot (the plugin's
    # own stream goes to the source unchanged)
    prefix, label = ("n", "Person") if gen.abi == "0.4" else ("b", "Boot")
    for i, event in enumerate(events):
        assert (event.source_id, event.label, event.entity_id) == ("src-1", label, f"{prefix}{i}")
        change = event.change
        assert change is not None
        assert change.element.reference == ElementReference("src-1", f"{prefix}{i}")
        assert change.element.properties["i"] == i

    await source.aclose()
    assert gen.read_stats(gen.bootstrap_lib)[counter] == dropped + 1
    made, released = await settle(payloads.delta)
    assert made == released >= 120


async def test_opaque_source_refuses_a_host_provider(
    make_source: Callable[..., Any],
) -> None:
    source = await make_source("opaque", {"event_count": 0})
    before = set(handles._objects)
    with pytest.raises(PayloadFormatError, match="exports no payload format"):
        await source.set_bootstrap_provider(PythonProvider(1))
    assert set(handles._objects) == before


async def test_host_built_vtable_called_directly() -> None:
    """The C side of a host-built vtable, driven the way a plugin drives it."""
    codec = codec_for("application/json")
    provider = PythonProvider(30)
    vt = build_provider_vtable(provider, codec=codec, label="direct")
    key = ctx_key(vt.state)
    assert key in handles
    channel = EventChannel(lib.DH_KIND_BOOTSTRAP_EVENTS, codec, "direct", capacity=4)
    sender = ffi.new("FfiBootstrapSender *")
    lib.dh_bootstrap_sender_init(sender, channel.key)
    b = Borrowed()
    nodes, n_nodes = b.str_array(["A", "B"])
    relations, n_relations = b.str_array([])
    args = (
        vt.state,
        b.str("qq"),
        nodes,
        n_nodes,
        relations,
        n_relations,
        b.str("rid"),
        b.str("srv"),
        b.str("sid"),
        sender,
    )
    try:
        # On the event loop's own thread the call is refused instead of deadlocking.
        assert vt.bootstrap_fn(*args) == -1
        assert provider.calls == []

        events: list[BootstrapEvent] = []

        async def drain() -> None:
            batch: collections.deque[Any] = collections.deque()
            while True:
                channel.drain(batch)
                events.extend(batch)
                batch.clear()
                if channel.ended:
                    return
                await channel.wait()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                count = await anyio.to_thread.run_sync(vt.bootstrap_fn, *args)
                channel.mark_ended()
        assert count == 30
        assert provider.calls == [
            (BootstrapRequest("qq", ["A", "B"], [], "rid"), BootstrapContext("srv", "sid"))
        ]
        assert [e.change for e in events] == [_change(i, "sid") for i in range(30)]
        assert [(e.source_id, e.label, e.entity_id, e.sequence) for e in events] == [
            ("sid", "Person", f"py-{i}", i) for i in range(30)
        ]

        vt.drop_fn(vt.state)  # what the owning plugin does
        assert key not in handles
        # A late call naming the dropped state is answered -1 at once.
        assert await anyio.to_thread.run_sync(vt.bootstrap_fn, *args) == -1
        assert len(provider.calls) == 1
    finally:
        channel.release()
        lib.free(vt)


class NanProvider(PythonProvider):
    """Sends three good records, then one JSON cannot carry."""

    async def bootstrap(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int:
        for i in range(3):
            await event_tx.send(BootstrapEvent.from_change(_change(i), sequence=i))
        bad = SourceChange(
            ChangeOp.INSERT,
            Element("node", ElementReference("py", "nan"), ["Person"], 1, {"x": float("nan")}),
        )
        await event_tx.send(BootstrapEvent.from_change(bad, sequence=3))
        return 4


async def test_unencodable_event_fails_the_bootstrap(
    make_source: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    source = await make_source()
    await source.set_bootstrap_provider(NanProvider(0))
    events = await _bootstrap_via(source)
    assert [e.entity_id for e in events] == ["py-0", "py-1", "py-2"]
    assert "cannot be encoded as application/json" in caplog.text
