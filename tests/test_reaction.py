"""ReactionProxy against the real fixture reaction plugin: results delivered
exactly once and in order, back-pressure, stop and close while the plugin is
blocked in its pull, late pulls, and opaque-payload plugins."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import cffi
import pytest
from generations import Gen

from drasi_host import (
    CallbackContext,
    DrasiHostError,
    PayloadFormatError,
    QueryResult,
    ReactionRuntimeContext,
    ResultDiff,
)
from drasi_host._abi import NULL, key_ctx, lib
from drasi_host.bridges.state_store import MemoryStateStore
from drasi_host.loader import load_plugin
from drasi_host.models import ComponentStatus
from drasi_host.payloads import PayloadCodec, codec_for
from drasi_host.proxies import reaction as reaction_module
from drasi_host.proxies.reaction import ReactionProxy

pytestmark = pytest.mark.anyio

N = 2000
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
_json = codec_for("application/json")
assert _json is not None
JSON: PayloadCodec = _json

_summary_ffi = cffi.FFI()
_summary_ffi.cdef(
    "void drasi_fixture_reaction_summary(int64_t *count, int64_t *bytes, uint64_t *fnv);"
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fnv1a(chunks: list[bytes]) -> int:
    h = FNV_OFFSET
    for chunk in chunks:
        for byte in chunk:
            h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def summary(path: Path) -> tuple[int, int, int]:
    lib_ = _summary_ffi.dlopen(str(path))
    count = _summary_ffi.new("int64_t *")
    size = _summary_ffi.new("int64_t *")
    fnv = _summary_ffi.new("uint64_t *")
    lib_.drasi_fixture_reaction_summary(count, size, fnv)
    return int(count[0]), int(size[0]), int(fnv[0])


def make_results(n: int, query_id: str = "q1") -> list[QueryResult]:
    base = datetime(2026, 11, 28, 7, 30, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        stamp = base + timedelta(microseconds=i)
        if i % 3 == 0:
            diffs = [ResultDiff.add({"i": i, "name": f"n{i}", "tags": ["a", "ü"]})]
        elif i % 3 == 1:
            diffs = [ResultDiff.update({"i": i}, {"v": i - 1}, {"v": i}, ["k"]), ResultDiff.noop()]
        else:
            diffs = [ResultDiff.delete({"i": i}), ResultDiff.aggregation(None, {"sum": i * 0.5})]
        out.append(QueryResult(query_id, stamp, diffs, {"seq": i}))
    return out


class SlowStore(MemoryStateStore):
    """A state store whose writes take a while: makes the plugin a slow consumer."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def set(self, store_id: str, key: str, value: bytes) -> None:
        time.sleep(self.delay)
        super().set(store_id, key, value)


class Stats:
    def __init__(self, read: Callable[[Path], dict[str, int]], path: Path) -> None:
        self._read = read
        self._path = path
        self._before = read(path)

    def delta(self) -> dict[str, int]:
        now = self._read(self._path)
        return {k: now[k] - self._before[k] for k in now}


@pytest.fixture
def reaction_lib(fixture_plugins: dict[str, Path]) -> Path:
    return fixture_plugins["reaction"]


@pytest.fixture
def stats(fixture_stats_reader: Callable[[Path], dict[str, int]], reaction_lib: Path) -> Stats:
    return Stats(fixture_stats_reader, reaction_lib)


@pytest.fixture
async def make_reaction(
    reaction_lib: Path,
) -> AsyncIterator[Callable[..., Any]]:
    created: list[ReactionProxy] = []
    callbacks = CallbackContext("test")
    plugin = load_plugin(reaction_lib, callbacks)

    async def make(
        config: dict[str, Any] | None = None,
        *,
        store: Any = None,
        query_ids: tuple[str, ...] = ("q1",),
        rid: str = "r1",
    ) -> ReactionProxy:
        factory = plugin.reaction_plugins[0]
        reaction = await factory.create_reaction(rid, list(query_ids), config or {})
        created.append(reaction)
        await reaction.initialize(ReactionRuntimeContext("test", rid, state_store=store))
        return reaction

    yield make
    for reaction in created:
        await reaction.aclose()


@pytest.fixture
async def make_gen_reaction(gen: Gen) -> AsyncIterator[Callable[..., Any]]:
    """Reactions of each generation's reaction fixture."""
    created: list[ReactionProxy] = []
    plugin = load_plugin(gen.reaction_lib, CallbackContext("test"))

    async def make(
        config: dict[str, Any] | None = None, *, rid: str = "r1", store: Any = None
    ) -> ReactionProxy:
        factory = plugin.reaction_plugins[0]
        reaction = await factory.create_reaction(rid, ["q1"], config or {})
        created.append(reaction)
        await reaction.initialize(ReactionRuntimeContext("test", rid, state_store=store))
        return reaction

    yield make
    for reaction in created:
        await reaction.aclose()
    plugin.close()


class GenStats(Stats):
    """A generation's reaction counters: results the plugin took, and its
    reactions dropped."""

    def __init__(self, gen: Gen) -> None:
        super().__init__(gen.read_stats, gen.reaction_lib)
        self.gen = gen

    def taken(self) -> int:
        return self.delta()["results_received"]

    def dropped(self) -> int:
        return self.delta()[self.gen.dropped_counters["reaction"]]


async def test_identity_and_query_ids(gen: Gen) -> None:
    with load_plugin(gen.reaction_lib, CallbackContext("test")) as plugin:
        factory = plugin.reaction_plugins[0]
        reaction = await factory.create_reaction("react-x", ["q1", "q2", "ünï"], {})
        async with reaction:
            await reaction.initialize(ReactionRuntimeContext("test", "react-x"))
            assert reaction.id == "react-x"
            assert reaction.type_name == gen.reaction_type
            assert reaction.auto_start is True
            assert reaction.query_ids == ["q1", "q2", "ünï"]
            assert reaction.component_type == "reaction"
            assert reaction.abi_version == gen.abi
            assert await reaction.status() is gen.initialized_status
            await reaction.start()
            assert await reaction.status() is ComponentStatus.RUNNING
            await reaction.stop()
            assert await reaction.status() is ComponentStatus.STOPPED
            await reaction.deprovision()
            assert await reaction.status() is gen.deprovisioned_status


async def test_round_trip_counts_bytes_and_hash(
    make_gen_reaction: Callable[..., Any], gen: Gen
) -> None:
    stats = GenStats(gen)
    store = MemoryStateStore()
    reaction = await make_gen_reaction(store=store)
    await reaction.start()
    assert await reaction.status() is ComponentStatus.RUNNING
    results = make_results(N)
    for result in results[: N // 2]:
        await reaction.enqueue_query_result(result)
    assert await reaction.enqueue_query_results(results[N // 2 :]) == N - N // 2
    assert await reaction.flush(timeout=10)
    assert reaction.pending == 0
    await reaction.stop()

    d = stats.delta()
    assert d["results_received"] == N
    assert d["results_invalid"] == 0
    if gen.abi != "0.4":
        # Every MessagePack document checked by the plugin's strict reader,
        # and its forwarder's exit confirmed with the sentinel.
        assert d["results_decoded"] == N
        assert d["result_diffs"] == sum(len(r.results) for r in results)
        assert d["exit_sentinels_sent"] == 1
        return
    encoded = [JSON.encode_query_result(r) for r in results]
    expected = (N, sum(map(len, encoded)), fnv1a(encoded))
    assert summary(gen.reaction_lib) == expected
    assert store.get("r1", "result_count") == str(N).encode()
    assert store.get("r1", "result_bytes") == str(expected[1]).encode()
    assert store.get("r1", "result_fnv1a") == f"{expected[2]:016x}".encode()
    assert d["results_released"] == N
    assert d["double_release_detected"] == 0


async def test_record_store_writes_each_encoded_document(make_reaction: Callable[..., Any]) -> None:
    store = MemoryStateStore()
    reaction = await make_reaction({"record": "store"}, store=store)
    await reaction.start()
    results = make_results(N)
    await reaction.enqueue_query_results(results)
    assert await reaction.flush(timeout=10)
    await reaction.stop()
    for i, result in enumerate(results):
        stored = store.get("r1", f"result:{i:08d}")
        assert stored is not None
        assert stored == JSON.encode_query_result(result), i
        assert JSON.decode_query_result(stored) == result
    assert store.get("r1", f"result:{N:08d}") is None


async def test_back_pressure_waits_and_loses_nothing(
    make_reaction: Callable[..., Any], reaction_lib: Path, stats: Stats
) -> None:
    store = SlowStore(delay=0.002)
    reaction = await make_reaction({"record": "store"}, store=store)
    reaction.result_capacity = 4
    await reaction.start()
    results = make_results(60)
    accepted: list[QueryResult] = []
    # The plugin takes ~2 ms per result and the channel holds 4: a producer
    # that may not wait longer than 20 ms is cut off while the channel is full.
    with anyio.move_on_after(0.02) as scope:
        for result in results:
            await reaction.enqueue_query_result(result)
            accepted.append(result)
            assert reaction.pending <= 4
    assert scope.cancelled_caught
    assert 4 <= len(accepted) < len(results)
    # The rest goes in once the plugin catches up.
    started = time.monotonic()
    await reaction.enqueue_query_results(results[len(accepted) :])
    assert time.monotonic() - started >= 0.02
    assert await reaction.flush(timeout=10)
    await reaction.stop()

    encoded = [JSON.encode_query_result(r) for r in results]
    assert summary(reaction_lib) == (len(results), sum(map(len, encoded)), fnv1a(encoded))
    for i, data in enumerate(encoded):
        assert store.get("r1", f"result:{i:08d}") == data
    d = stats.delta()
    assert d["results_received"] == d["results_released"] == len(results)
    assert d["double_release_detected"] == 0


async def test_stop_while_plugin_blocked_in_pull_is_prompt(
    make_reaction: Callable[..., Any], stats: Stats
) -> None:
    reaction = await make_reaction()
    await reaction.start()
    await anyio.sleep(0.05)  # the plugin thread is now waiting in the pull callback
    started = time.monotonic()
    with anyio.fail_after(5):
        await reaction.stop()
    assert time.monotonic() - started < 1.0
    assert await reaction.status() is ComponentStatus.STOPPED
    assert stats.delta()["results_received"] == 0


async def test_late_pulls_after_stop_return_null_at_once(
    make_reaction: Callable[..., Any], stats: Stats
) -> None:
    reaction = await make_reaction()
    await reaction.start()
    await reaction.enqueue_query_results(make_results(10))
    stale = reaction._results.key  # the channel key the plugin was given
    assert stale != 0
    await reaction.stop()

    def pull_many() -> list[bool]:
        return [lib.dh_result_pull(key_ctx(stale), NULL) == NULL for _ in range(1000)]

    with anyio.fail_after(5):
        answers = await anyio.to_thread.run_sync(pull_many)
    assert all(answers)
    # Results queued but never pulled were released by the host, not leaked.
    d = stats.delta()
    assert d["results_received"] == d["results_released"] <= 10


async def test_restart_gets_a_fresh_channel(
    make_reaction: Callable[..., Any], reaction_lib: Path
) -> None:
    reaction = await make_reaction(query_ids=("q1", "again"))
    await reaction.start()
    first = reaction._results.key
    await reaction.enqueue_query_results(make_results(5))
    assert await reaction.flush(timeout=10)
    await reaction.stop()
    await reaction.start()
    assert reaction._results.key not in (0, first)
    results = make_results(7, "again")
    await reaction.enqueue_query_results(results)
    assert await reaction.flush(timeout=10)
    await reaction.stop()
    encoded = [JSON.encode_query_result(r) for r in results]
    assert summary(reaction_lib) == (7, sum(map(len, encoded)), fnv1a(encoded))


async def test_enqueue_when_not_running(make_gen_reaction: Callable[..., Any]) -> None:
    reaction = await make_gen_reaction()
    result = make_results(1)[0]
    with pytest.raises(DrasiHostError, match="is not running"):
        await reaction.enqueue_query_result(result)
    await reaction.start()
    await reaction.enqueue_query_result(result)
    await reaction.stop()
    with pytest.raises(DrasiHostError, match="is not running"):
        await reaction.enqueue_query_result(result)
    with pytest.raises(DrasiHostError, match="is not running"):
        await reaction.enqueue_query_results([result])


async def test_oversized_result_is_refused(
    make_reaction: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, stats: Stats
) -> None:
    reaction = await make_reaction()
    await reaction.start()
    small = make_results(1)[0]
    limit = len(JSON.encode_query_result(small)) + 10
    monkeypatch.setattr(reaction_module, "MAX_PAYLOAD_SIZE", limit)
    big = QueryResult("q1", small.timestamp, [ResultDiff.add({"blob": "x" * 100})])
    with pytest.raises(PayloadFormatError, match="over the limit"):
        await reaction.enqueue_query_result(big)
    await reaction.enqueue_query_result(small)
    assert await reaction.flush(timeout=10)
    await reaction.stop()
    assert stats.delta()["results_received"] == 1


async def test_unencodable_result_is_refused(make_reaction: Callable[..., Any]) -> None:
    reaction = await make_reaction()
    await reaction.start()
    bad = QueryResult("q1", datetime.now(timezone.utc), [ResultDiff.add({"x": float("nan")})])
    with pytest.raises(PayloadFormatError):
        await reaction.enqueue_query_result(bad)
    await reaction.stop()


async def test_opaque_plugin_cannot_take_results(fixture_plugins: dict[str, Path]) -> None:
    plugin = load_plugin(fixture_plugins["opaque"], CallbackContext("test"))
    assert plugin.payload_format is None
    factory = next(f for f in plugin.reaction_plugins if f.kind == "opaque-reaction")
    async with await factory.create_reaction("op1", ["q1"], {}) as reaction:
        await reaction.initialize(ReactionRuntimeContext("test", "op1"))
        await reaction.start()
        with pytest.raises(PayloadFormatError, match="exports no payload format") as info:
            await reaction.enqueue_query_result(make_results(1)[0])
        assert "libdrasi_opaque" in str(info.value)
        with pytest.raises(PayloadFormatError):
            await reaction.enqueue_query_results(make_results(2))
        await reaction.stop()


async def test_aclose_while_running_releases_everything_once(
    make_gen_reaction: Callable[..., Any], gen: Gen
) -> None:
    stats = GenStats(gen)
    reaction = await make_gen_reaction(rid="closing")
    await reaction.start()
    await reaction.enqueue_query_results(make_results(50))
    with anyio.fail_after(5):
        await reaction.aclose()
        await reaction.aclose()
    assert reaction.closed
    with pytest.raises(DrasiHostError, match="closed"):
        await reaction.enqueue_query_result(make_results(1)[0])
    with pytest.raises(DrasiHostError, match="closed"):
        await reaction.start()
    assert stats.dropped() == 1
    assert stats.taken() <= 50
    d = stats.delta()
    if gen.abi == "0.4":
        assert d["results_received"] == d["results_released"]
        assert d["double_release_detected"] == 0
    else:  # the forwarder exited (the sentinel came) before the drop
        assert d["exit_sentinels_sent"] == 1
        assert d["results_decoded"] == d["results_received"]


async def test_aclose_wakes_a_producer_waiting_for_space(
    make_reaction: Callable[..., Any], stats: Stats
) -> None:
    reaction = await make_reaction({"record": "store"}, store=SlowStore(delay=0.05))
    reaction.result_capacity = 2
    await reaction.start()
    errors: list[BaseException] = []

    async def produce() -> None:
        try:
            await reaction.enqueue_query_results(make_results(100))
        except DrasiHostError as exc:
            errors.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            await anyio.sleep(0.05)  # the producer is now waiting for space
            await reaction.aclose()
    assert len(errors) == 1
    assert "is closed" in str(errors[0])
    d = stats.delta()
    assert d["reactions_dropped"] == 1
    assert d["results_received"] == d["results_released"] < 100


async def test_finalizer_releases_an_unclosed_reaction(gen: Gen) -> None:
    stats = GenStats(gen)
    plugin = load_plugin(gen.reaction_lib, CallbackContext("test"))
    reaction = await plugin.reaction_plugins[0].create_reaction("gc", ["q1"], {})
    await reaction.initialize(ReactionRuntimeContext("test", "gc"))
    await reaction.start()
    await reaction.enqueue_query_results(make_results(3))
    with pytest.warns(ResourceWarning, match="garbage-collected while open"):
        del reaction
        for _ in range(3):
            gc.collect()
    with anyio.fail_after(10):  # released on the drop thread
        while stats.dropped() == 0:
            await anyio.sleep(0.01)
    assert stats.dropped() == 1
    d = stats.delta()
    if gen.abi == "0.4":
        assert d["results_received"] == d["results_released"]
    else:
        assert d["exit_sentinels_sent"] == 1
    plugin.close()


@pytest.mark.anyio
async def test_a_cancelled_enqueue_queues_nothing(make_reaction: Callable[..., Any]) -> None:
    """The cancellation check of both enqueue calls (made without asking
    sniffio for the backend) sees a scope cancelled before the call, also
    one nested in a shielded scope, and queues nothing."""
    reaction = await make_reaction({"record": "store"}, store=SlowStore(delay=0.05))
    await reaction.start()
    results = make_results(3)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await reaction.enqueue_query_result(results[0])
        pytest.fail("a cancelled enqueue_query_result returned")
    with anyio.CancelScope(shield=True):
        with anyio.CancelScope() as inner:
            inner.cancel()
            await reaction.enqueue_query_results(results)
            pytest.fail("a cancelled enqueue_query_results returned")
    assert scope.cancelled_caught and inner.cancelled_caught
    assert reaction.pending == 0
    # A scope whose deadline has passed counts as cancelled too.
    with anyio.move_on_after(0) as late:
        await reaction.enqueue_query_result(results[0])
    assert late.cancelled_caught and reaction.pending == 0
    # Not cancelled: queued.
    assert await reaction.enqueue_query_result(results[0]) > 0
    assert await reaction.enqueue_query_results(results[1:]) == 2
