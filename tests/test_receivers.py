"""Change and bootstrap receivers: events pushed by plugin threads through the
native channels into ``async for``, in order, decoded lazily, with
back-pressure, early close, and every event released exactly once, also when
a plugin misbehaves.  Counters come from a private copy of the library, so
each test sees only its own events."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from generations import Gen

from drasi_host import (
    BootstrapEvent,
    CallbackContext,
    ChangeOp,
    ClosedError,
    PluginProtocolError,
    SourceEventWrapper,
    SourceProxy,
    SourceRuntimeContext,
    SubscriptionSettings,
)
from drasi_host.loader import load_plugin
from drasi_host.proxies.receivers import ChangeReceiverProxy

Stats = Callable[[Path], dict[str, int]]
OPS = [ChangeOp.INSERT, ChangeOp.UPDATE, ChangeOp.DELETE]


def private_copy(src: Path, directory: Path) -> Path:
    """A copy of a built library: loading it gives a fresh library instance."""
    directory.mkdir(parents=True, exist_ok=True)
    dst = directory / src.name
    shutil.copy2(src, dst)
    return dst


def entity(i: int) -> str:
    """The fixture's element id of event ``i`` (every 4th one is a relation)."""
    return f"r{i}" if i % 4 == 3 else f"n{i}"


def settings(source_id: str, *, bootstrap: bool = False) -> SubscriptionSettings:
    return SubscriptionSettings(source_id, "q1", bootstrap, ["Person"], ["KNOWS"])


async def settle(
    stats: Callable[[], dict[str, int]], done: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    """Poll the plugin's counters until ``done`` holds (plugin threads may lag)."""
    with anyio.move_on_after(5):
        while not done(stats()):
            await anyio.sleep(0.01)
    return stats()


def all_released(s: dict[str, int]) -> bool:
    return s["events_created"] == s["events_released"]


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


@asynccontextmanager
async def running_source(
    path: Path, source_id: str, config: dict[str, Any]
) -> AsyncIterator[SourceProxy]:
    callbacks = CallbackContext("test-instance")
    with load_plugin(path, callbacks) as plugin:
        async with await plugin.source_plugins[0].create_source(source_id, config) as source:
            await source.initialize(SourceRuntimeContext("test-instance", source_id))
            await source.start()
            yield source


# ---- delivery ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ten_thousand_events_in_order(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["source"], tmp_path)
    n = 10_000
    started_us = time.time_ns() // 1000
    async with running_source(path, "bulk", {"event_count": n, "label": "Person"}) as source:
        response = await source.subscribe(settings("bulk"))
        assert (response.query_id, response.source_id) == ("q1", "bulk")
        assert response.bootstrap_receiver is None
        events: list[SourceEventWrapper] = []
        async with response.receiver as receiver:
            async for event in receiver:
                events.append(event)
            with pytest.raises(StopAsyncIteration):
                await receiver.__anext__()
        finished_us = time.time_ns() // 1000
        await source.stop()
    assert len(events) == n
    assert [e.entity_id for e in events] == [entity(i) for i in range(n)]
    assert [e.op for e in events] == [OPS[i % 3] for i in range(n)]
    assert [e.label for e in events] == ["KNOWS" if i % 4 == 3 else "Person" for i in range(n)]
    assert {e.source_id for e in events} == {"bulk"}
    stamps = [e.timestamp_us for e in events]
    assert stamps == sorted(stamps)
    assert started_us - 1_000_000 <= stamps[0] and stamps[-1] <= finished_us + 1_000_000

    for i, event in enumerate(events):
        change = event.change
        assert change is not None and change.op is OPS[i % 3]
        element = change.element
        assert element.reference.element_id == entity(i)
        assert element.reference.source_id == "bulk"
        assert element.effective_from == i
        if i % 4 == 3:
            assert element.type == "relation" and element.labels == ("KNOWS",)
            assert element.in_node is not None and element.out_node is not None
            assert element.in_node.element_id == f"n{i - 1}"
            assert element.out_node.element_id == f"n{i - 2}"
        else:
            assert element.type == "node" and element.labels == ("Person",)
            assert element.in_node is None and element.out_node is None
        if change.op is ChangeOp.DELETE:
            assert element.properties == {}
        else:
            assert element.properties["i"] == i
            assert element.properties["name"] == f"node-{i}"
            assert element.properties["nested"] == {"k": f"v{i}"}
        assert event.change is change  # decoded once, then cached
    stats = fixture_stats_reader(path)
    assert stats["events_created"] == stats["events_released"] == n
    assert stats["double_release_detected"] == 0
    assert stats["receivers_dropped"] == 1


@pytest.mark.anyio
async def test_change_is_decoded_lazily(fixture_plugins: dict[str, Path]) -> None:
    async with running_source(fixture_plugins["source"], "lazy", {"event_count": 4}) as source:
        response = await source.subscribe(settings("lazy"))
        async with response.receiver as receiver:
            events = [e async for e in receiver]
    assert not any(hasattr(e, "_change") for e in events)  # nothing decoded yet
    assert events[3].payload is not None and b'"relation"' in events[3].payload
    change = events[3].change
    assert change is not None and change.element.type == "relation"
    assert hasattr(events[3], "_change") and not hasattr(events[0], "_change")


@pytest.mark.anyio
async def test_back_pressure_with_a_slow_consumer(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["source"], tmp_path)
    capacity, n = 8, 300
    async with running_source(path, "slow", {"event_count": n}) as source:
        response = await source.subscribe(settings("slow"), capacity=capacity)
        receiver = response.receiver
        async with receiver:
            first = await receiver.__anext__()
            assert first.entity_id == "n0"
            await anyio.sleep(0.3)  # the plugin fills the channel and blocks
            queue = receiver.stats()
            assert queue["capacity"] == capacity
            assert queue["queued"] == capacity
            # the plugin made only what fits: what we drained + the channel + one in flight
            assert fixture_stats_reader(path)["events_created"] <= 1 + 2 * capacity + 1
            ids = [first.entity_id]
            async for event in receiver:
                ids.append(event.entity_id)
                if len(ids) % 50 == 0:
                    assert receiver.stats()["queued"] <= capacity
                    await anyio.sleep(0.01)
        assert ids == [entity(i) for i in range(n)]
    stats = fixture_stats_reader(path)
    assert stats["events_created"] == stats["events_released"] == n


@pytest.mark.anyio
async def test_early_close_of_a_huge_stream(gen: Gen, tmp_path: Path) -> None:
    path = private_copy(gen.source_lib, tmp_path)

    def payloads_released(s: dict[str, int]) -> bool:
        made, released = gen.payload_counters
        return s[made] == s[released]

    async with running_source(path, "huge", gen.source_config(1_000_000)) as source:
        response = await source.subscribe(settings("huge"))
        receiver = response.receiver
        ids = []
        async for event in receiver:
            ids.append(event.entity_id)
            if len(ids) == 100:
                break
        if gen.abi == "0.4":
            assert ids == [entity(i) for i in range(100)]
        else:  # a cycle of node insert, node update, relation insert, node delete
            assert ids[:4] == ["n0", "n0", "r2", "n0"] and len(ids) == 100
        started = time.monotonic()
        with anyio.fail_after(5):
            await receiver.aclose()
        assert time.monotonic() - started < 2
        assert receiver.closed
        with pytest.raises(ClosedError):  # a closed receiver says so
            await receiver.__anext__()
        stats = await settle(lambda: gen.read_stats(path), payloads_released)
        assert stats["receivers_dropped"] == 1
        # The plugin stopped early: told by a push answered false, or by its
        # drop_fn when its thread was between two pushes at the close.
        made, released = gen.payloads(path)
        assert 100 <= made == released < 1_000_000
        await receiver.aclose()  # idempotent
        assert gen.read_stats(path)["receivers_dropped"] == 1


@pytest.mark.anyio
async def test_bootstrap_receiver(gen: Gen, tmp_path: Path) -> None:
    path = private_copy(gen.source_lib, tmp_path)
    config = {**gen.source_config(5, 50), "label": "Thing"}
    async with running_source(path, "boot", config) as source:
        response = await source.subscribe(settings("boot", bootstrap=True))
        assert response.bootstrap_receiver is not None
        async with response.bootstrap_receiver as boot:
            records: list[BootstrapEvent] = [r async for r in boot]
        async with response.receiver as receiver:
            changes = [e async for e in receiver]
    assert all(isinstance(r, BootstrapEvent) and r.op is ChangeOp.INSERT for r in records)
    assert len(changes) == 5
    made, released = gen.payloads(path)
    stats = gen.read_stats(path)
    if gen.abi == "0.4":
        assert [r.sequence for r in records] == list(range(50))
        assert [r.entity_id for r in records] == [entity(i) for i in range(50)]
        assert records[0].label == "Thing" and records[3].label == "KNOWS"
        assert made == released == 55
        assert stats["bootstrap_receivers_dropped"] == stats["receivers_dropped"] == 1
    else:  # b<i> nodes; the end-of-bootstrap result counts them and says where to resume
        assert [r.sequence for r in records] == list(range(1, 51))
        assert [r.entity_id for r in records] == [f"b{i}" for i in range(50)]
        assert boot.outcome is not None and boot.outcome.event_count == 50
        assert boot.outcome.position == bytes([0xAA, 50])
        assert made == released == 55 + 1  # and the position buffer
        # change, bootstrap events and bootstrap result receivers
        assert stats["receivers_created"] == stats["receivers_dropped"] == 3
    change = records[10].change
    assert change is not None and change.op is ChangeOp.INSERT
    assert change.element.properties["i"] == 10


@pytest.mark.anyio
async def test_opaque_payload_events(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["opaque"], tmp_path)
    async with running_source(path, "opq", {"event_count": 20}) as source:
        assert source.payload_format is None
        response = await source.subscribe(settings("opq"))
        async with response.receiver as receiver:
            events = [e async for e in receiver]
    assert [e.entity_id for e in events] == [entity(i) for i in range(20)]
    assert [e.op for e in events] == [OPS[i % 3] for i in range(20)]
    assert {e.source_id for e in events} == {"opq"}
    assert events[1].label == "Person" and events[3].label == "KNOWS"
    assert all(e.payload is None and e.change is None for e in events)
    assert all(e.timestamp_us > 0 for e in events)
    stats = fixture_stats_reader(path)
    assert stats["events_created"] == stats["events_released"] == 20
    assert stats["payloads_released"] == stats["payloads_created"] == 20
    assert stats["double_release_detected"] == 0


# ---- hostile plugins ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_oversize_payload_skipped(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["hostile"], tmp_path)
    async with running_source(path, "h-big", {"mode": "oversize"}) as source:
        response = await source.subscribe(settings("h-big"))
        async with response.receiver as receiver:
            items = await drain_with_errors(receiver)
    assert len(items) == 2
    error, event = items
    assert isinstance(error, PluginProtocolError)
    assert "exceeds the maximum" in str(error) and "'n0'" in str(error)
    assert isinstance(event, SourceEventWrapper) and event.entity_id == "n1"
    change = event.change
    assert change is not None and change.op is ChangeOp.UPDATE
    stats = fixture_stats_reader(path)
    assert stats["events_created"] == stats["events_released"] == 2
    assert stats["double_release_detected"] == 0


@pytest.mark.anyio
async def test_bad_json_payload(fixture_plugins: dict[str, Path]) -> None:
    async with running_source(fixture_plugins["hostile"], "h-json", {"mode": "bad_json"}) as source:
        response = await source.subscribe(settings("h-json"))
        async with response.receiver as receiver:
            events = [e async for e in receiver]
    assert [e.entity_id for e in events] == [f"n{i}" for i in range(10)]
    for event in events:
        assert event.payload == b"not json{"
        for _ in range(2):  # every access raises, nothing bad is cached
            with pytest.raises(PluginProtocolError, match="undecodable") as info:
                _ = event.change
            assert event.entity_id in str(info.value)


@pytest.mark.anyio
async def test_bad_op(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["hostile"], tmp_path)
    async with running_source(path, "h-op", {"mode": "bad_op"}) as source:
        response = await source.subscribe(settings("h-op"))
        async with response.receiver as receiver:
            items = await drain_with_errors(receiver)
    assert isinstance(items[0], PluginProtocolError)
    assert "9 is not a valid FfiChangeOp" in str(items[0])
    assert [e.entity_id for e in items[1:]] == [entity(i) for i in range(1, 10)]
    assert [e.op for e in items[1:]] == [OPS[i % 3] for i in range(1, 10)]
    stats = fixture_stats_reader(path)
    assert stats["events_created"] == stats["events_released"] == 10


@pytest.mark.anyio
async def test_bad_utf8_label_is_replaced(fixture_plugins: dict[str, Path]) -> None:
    async with running_source(fixture_plugins["hostile"], "h-utf", {"mode": "bad_utf8"}) as source:
        response = await source.subscribe(settings("h-utf"))
        async with response.receiver as receiver:
            events = [e async for e in receiver]
    assert len(events) == 10
    assert events[0].label == "bad\ufffd\ufffdlabel"
    assert events[1].label == "Person"
    change = events[0].change
    assert change is not None and change.element.labels == ("Person",)


@pytest.mark.anyio
async def test_pushes_after_end_of_stream_are_released(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["hostile"], tmp_path)
    async with running_source(path, "h-eos", {"mode": "after_eos"}) as source:
        response = await source.subscribe(settings("h-eos"))
        async with response.receiver as receiver:
            events = [e async for e in receiver]
        assert [e.entity_id for e in events] == ["n0", "n1", "n2"]
        stats = await settle(
            lambda: fixture_stats_reader(path),
            lambda s: s["late_calls_made"] == 3 and all_released(s),
        )
    assert stats["events_created"] == stats["events_released"] == 5
    assert stats["late_calls_made"] == 3  # two events and a second end of stream
    assert stats["end_of_stream_sent"] == 2
    assert stats["double_release_detected"] == 0


@pytest.mark.anyio
async def test_flood_after_drop_is_refused_and_released(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["hostile"], tmp_path)
    fresh_path = private_copy(fixture_plugins["source"], tmp_path / "fresh")
    async with running_source(path, "h-flood", {"mode": "flood_after_drop"}) as source:
        response = await source.subscribe(settings("h-flood"))
        receiver = response.receiver
        seen = 0
        async for event in receiver:
            assert event.source_id == "h-flood"
            seen += 1
            if seen == 5:
                break
        await receiver.aclose()
        # while the dropped receiver's thread keeps pushing with its stale key,
        # new channels (which may reuse its slot) get only their own events
        async with running_source(fresh_path, "fresh", {"event_count": 50}) as other:
            for _ in range(3):
                resp = await other.subscribe(settings("fresh"))
                async with resp.receiver as fresh_receiver:
                    fresh = [e async for e in fresh_receiver]
                assert [e.entity_id for e in fresh] == [entity(i) for i in range(50)]
                assert {e.source_id for e in fresh} == {"fresh"}
        stats = await settle(
            lambda: fixture_stats_reader(path),
            lambda s: s["end_of_stream_sent"] >= 1 and all_released(s),
        )
    assert stats["end_of_stream_sent"] == 1  # the flood thread has finished
    assert stats["late_calls_made"] > 1
    assert stats["events_created"] == stats["events_released"]
    assert stats["events_created"] > 5
    assert stats["double_release_detected"] == 0
    assert stats["receivers_dropped"] == 1


@pytest.mark.anyio
async def test_many_receivers_opened_and_closed(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["source"], tmp_path)
    cycles = 2_000
    async with running_source(path, "cycle", {"event_count": 3}) as source:
        for i in range(cycles):
            response = await source.subscribe(settings("cycle"))
            cycled: ChangeReceiverProxy = response.receiver
            if i % 2:
                event = await cycled.__anext__()
                assert event.entity_id == "n0" and event.source_id == "cycle"
            await cycled.aclose()
        # after all that recycling, a receiver still gets exactly its own events
        response = await source.subscribe(settings("cycle"))
        async with response.receiver as receiver:
            assert [e.entity_id async for e in receiver] == ["n0", "n1", "n2"]
        stats = await settle(lambda: fixture_stats_reader(path), all_released)
    assert stats["receivers_created"] == stats["receivers_dropped"] == cycles + 1
    assert stats["events_created"] == stats["events_released"]
    assert stats["double_release_detected"] == 0


# ---- copy-on-push channels: batches, bounds, lifetimes -------------------------------

CHAN_COUNTERS = (
    "events_pushed",
    "events_released",
    "receivers_created",
    "receivers_dropped",
    "start_calls",
    "start_after_drop",
    "drop_during_start",
    "push_false",
)


class ChanCounters:
    """The counters of a private copy of ``libdrasi_chan_fixture``."""

    def __init__(self, path: Path) -> None:
        import cffi

        self.ffi = cffi.FFI()
        self.ffi.cdef("void drasi_chan_fixture_counters(int64_t *out, size_t n);")
        self.lib: Any = self.ffi.dlopen(str(path))

    def __call__(self) -> dict[str, int]:
        out = self.ffi.new("int64_t[]", len(CHAN_COUNTERS))
        self.lib.drasi_chan_fixture_counters(out, len(CHAN_COUNTERS))
        return dict(zip(CHAN_COUNTERS, (int(v) for v in out), strict=True))


@asynccontextmanager
async def chan_source(
    path: Path, config: dict[str, Any], *, probe: bool = False
) -> AsyncIterator[SourceProxy]:
    callbacks = CallbackContext("test-instance")
    with load_plugin(path, callbacks) as plugin:
        factory = plugin.source_plugins[1 if probe else 0]
        async with await factory.create_source("chan", config) as source:
            await source.initialize(SourceRuntimeContext("test-instance", "chan"))
            await source.start()
            yield source


def chan_entity(i: int) -> str:
    return f"n{i}"


@pytest.mark.anyio
async def test_batches_columns_and_events(fixture_plugins: dict[str, Path]) -> None:
    n = 5000
    async with chan_source(fixture_plugins["chan"], {"event_count": n}) as source:
        response = await source.subscribe(settings("chan"))
        sizes: list[int] = []
        seen: list[SourceEventWrapper] = []
        async with response.receiver as receiver:
            async for batch in receiver.batches(max_events=700):
                assert 0 < len(batch) <= 700
                sizes.append(len(batch))
                events = list(batch)
                assert all(type(e) is SourceEventWrapper for e in events)
                assert list(batch.entity_ids) == [e.entity_id for e in events]
                assert list(batch.labels) == [e.label for e in events] == ["Person"] * len(batch)
                assert list(batch.source_ids) == [e.source_id for e in events]
                assert list(batch.ops) == [e.op for e in events]
                assert list(batch.timestamps_us) == [e.timestamp_us for e in events]
                assert list(batch.payloads) == [e.payload for e in events]
                assert list(batch.sequences) == [0] * len(batch)
                changes = batch.changes()
                assert [c.element.reference.element_id for c in changes if c] == [
                    e.entity_id for e in events
                ]
                seen.extend(events)
            with pytest.raises(StopAsyncIteration):  # a normal end stays a normal end
                await receiver.__anext__()
    assert [e.entity_id for e in seen] == [chan_entity(i) for i in range(n)]
    assert [e.op for e in seen] == [OPS[i % 3] for i in range(n)]
    assert [e.timestamp_us for e in seen] == list(range(n))
    assert {e.source_id for e in seen} == {"chan"}
    assert sum(sizes) == n


@pytest.mark.anyio
async def test_batches_and_events_mixed_deliver_each_event_once_in_order(
    fixture_plugins: dict[str, Path],
) -> None:
    n = 20_000
    async with chan_source(fixture_plugins["chan"], {"event_count": n}) as source:
        response = await source.subscribe(settings("chan"), capacity=256)
        got: list[str] = []
        async with response.receiver as receiver:
            batches = receiver.batches(max_events=97)
            step = 0
            while True:
                step += 1
                try:
                    if step % 3:
                        got.append((await receiver.__anext__()).entity_id)
                    else:
                        batch = await batches.__anext__()
                        assert 0 < len(batch) <= 97
                        got.extend(batch.entity_ids)
                except StopAsyncIteration:
                    break
            await batches.aclose()
    assert got == [chan_entity(i) for i in range(n)]


@pytest.mark.anyio
async def test_batches_of_a_bootstrap_receiver_carry_sequences(
    fixture_plugins: dict[str, Path],
) -> None:
    async with running_source(
        fixture_plugins["source"], "boot", {"event_count": 0, "bootstrap_count": 300}
    ) as source:
        response = await source.subscribe(settings("boot", bootstrap=True))
        assert response.bootstrap_receiver is not None
        sequences: list[int] = []
        async with response.bootstrap_receiver as boot:
            async for batch in boot.batches():
                assert list(batch.ops) == [ChangeOp.INSERT] * len(batch)
                assert list(batch.sequences) == [e.sequence for e in batch]
                assert all(isinstance(e, BootstrapEvent) for e in batch)
                sequences.extend(batch.sequences)
        await response.receiver.aclose()
    assert sequences == list(range(300))


@pytest.mark.anyio
async def test_batches_argument_is_checked(fixture_plugins: dict[str, Path]) -> None:
    async with chan_source(fixture_plugins["chan"], {"event_count": 1}) as source:
        response = await source.subscribe(settings("chan"))
        async with response.receiver as receiver:
            for bad in (0, -1):
                with pytest.raises(ValueError):
                    await receiver.batches(bad).__anext__()


@pytest.mark.anyio
async def test_byte_bound_holds_the_plugin_back(
    fixture_plugins: dict[str, Path], tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["chan"], tmp_path)
    counters = ChanCounters(path)
    n, max_bytes = 2000, 4096  # a few hundred bytes per event: ~20 fit
    async with chan_source(path, {"event_count": n}) as source:
        response = await source.subscribe(settings("chan"), max_bytes=max_bytes)
        async with response.receiver as receiver:
            first = await receiver.__anext__()
            await anyio.sleep(0.2)  # the plugin fills the channel by bytes and blocks
            stats = receiver.stats()
            assert stats["max_bytes"] == max_bytes
            assert 0 < stats["queued_bytes"] <= max_bytes
            assert stats["queued"] < 50 < stats["capacity"]
            assert counters()["events_pushed"] < 100
            ids = [first.entity_id] + [e.entity_id async for e in receiver]
    assert ids == [chan_entity(i) for i in range(n)]
    assert counters()["events_released"] == n


@pytest.mark.anyio
async def test_plugin_pushing_inside_start_push_fn_does_not_deadlock(
    fixture_plugins: dict[str, Path], tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["chan"], tmp_path)
    counters = ChanCounters(path)
    n = 10_000  # far beyond the channel's capacity
    async with chan_source(path, {"event_count": n, "sync": True}, probe=True) as source:
        response = await source.subscribe(settings("chan"), capacity=64)
        with anyio.fail_after(20):
            async with response.receiver as receiver:
                ids = [e.entity_id async for e in receiver]
    assert ids == [chan_entity(i) for i in range(n)]
    stats = counters()
    assert stats["start_calls"] == 1 and stats["events_released"] == n


@pytest.mark.anyio
async def test_close_under_a_waiting_step_raises_closed_error(
    fixture_plugins: dict[str, Path], tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["chan"], tmp_path)
    counters = ChanCounters(path)
    config = {"event_count": 1000, "interval_us": 10_000_000}  # one event, then a long pause
    async with chan_source(path, config, probe=True) as source:
        for _ in range(5):
            response = await source.subscribe(settings("chan"))
            receiver = response.receiver
            assert (await receiver.__anext__()).entity_id == "n0"
            outcome: list[BaseException] = []

            async def waiting(
                rx: ChangeReceiverProxy = receiver, outcome: list[BaseException] = outcome
            ) -> None:
                try:
                    await rx.__anext__()
                except BaseException as exc:  # recorded for the assertion below
                    outcome.append(exc)

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(waiting)
                    await anyio.sleep(0.05)  # the step is waiting for the next event
                    started = time.monotonic()
                    await receiver.aclose()
                assert time.monotonic() - started < 2
            assert len(outcome) == 1 and isinstance(outcome[0], ClosedError)
            assert "closed" in repr(receiver)
            with pytest.raises(ClosedError):
                await receiver.batches().__anext__()
    stats = await settle(counters, lambda s: s["receivers_dropped"] == 5)
    assert stats["receivers_created"] == stats["receivers_dropped"] == 5
    assert stats["events_pushed"] == stats["events_released"]


@pytest.mark.anyio
async def test_close_while_iterating_never_drops_during_or_before_start(
    fixture_plugins: dict[str, Path], tmp_path: Path
) -> None:
    path = private_copy(fixture_plugins["chan"], tmp_path)
    counters = ChanCounters(path)
    rounds = 320
    async with chan_source(
        path, {"event_count": 100_000, "start_delay_us": 300}, probe=True
    ) as source:
        for i in range(rounds):
            response = await source.subscribe(settings("chan"), capacity=16)
            receiver = response.receiver
            errors: list[BaseException] = []

            async def iterate(
                rx: ChangeReceiverProxy = receiver, errors: list[BaseException] = errors
            ) -> None:
                try:
                    async for _ in rx:
                        await anyio.sleep(0)
                except ClosedError:
                    pass
                except BaseException as exc:  # anything else fails the test below
                    errors.append(exc)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(iterate)
                    if i % 4:
                        await anyio.sleep(0.0005 * (i % 7))
                    await receiver.aclose()
            assert errors == []
    stats = await settle(counters, lambda s: s["receivers_dropped"] == rounds)
    assert stats["receivers_created"] == stats["receivers_dropped"] == rounds
    assert stats["start_after_drop"] == 0
    assert stats["drop_during_start"] == 0
    assert stats["events_pushed"] == stats["events_released"]


@pytest.mark.anyio
async def test_receiver_whose_channel_cannot_be_made_is_dropped(
    fixture_plugins: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drasi_host.channels import ChannelLimitError
    from drasi_host.errors import DrasiHostError
    from drasi_host.proxies import _generation

    path = private_copy(fixture_plugins["chan"], tmp_path)
    counters = ChanCounters(path)

    class Exhausted(_generation.EventChannel):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ChannelLimitError("cannot create an event channel (too many open)")

    async with chan_source(path, {"event_count": 3}, probe=True) as source:
        # the 0.4 generation makes the receivers' channels
        monkeypatch.setattr(_generation, "EventChannel", Exhausted)
        with pytest.raises(ChannelLimitError) as caught:
            await source.subscribe(settings("chan"))
        assert isinstance(caught.value, DrasiHostError)
        assert not isinstance(caught.value, MemoryError)
        monkeypatch.undo()
        stats = await settle(counters, lambda s: s["receivers_dropped"] == 1)
        assert stats["receivers_created"] == stats["receivers_dropped"] == 1
        response = await source.subscribe(settings("chan"))
        async with response.receiver as receiver:
            assert "not started" in repr(receiver)
            assert [e.entity_id async for e in receiver] == ["n0", "n1", "n2"]
            assert "ended" in repr(receiver)
