"""The C channel layer of ``drasi_host._ffi`` (``host.c``), with real threads.

A small C library (``tests/c/channel_helper.c``) is compiled for the module
and loaded with an ABI-mode ``cffi.FFI().dlopen``.  Its producer threads play
a plugin: they build event envelopes and ``DrasiPayload`` documents on the C
heap and push them through the host's own callbacks (``dh_change_push``,
``dh_bootstrap_push``, a host ``FfiBootstrapSender``), taken as function
pointers from ``lib``, exactly as a plugin receives them.  Its puller threads
play a reaction calling the host's result pull callback.  Every payload
release is counted per event in C, so "released exactly once" is observed
directly, whichever way an event leaves (drained, refused, released with its
channel).

Python takes what is queued with ``dh_events_take`` (records plus one byte
arena, copied on push) and waits through ``dh_chan_arm_consumer`` and a
:class:`~drasi_host.channels.Notifier`, under asyncio and trio.
"""

from __future__ import annotations

import collections
import functools
import itertools
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from c_helpers import CHelper, build_c_helper
from hypothesis import given, settings
from hypothesis import strategies as st

from drasi_host._abi import ffi, lib
from drasi_host.channels import EventBatch, EventChannel, Notifier, ResultChannel
from drasi_host.errors import ClosedError

pytestmark = [
    pytest.mark.skipif(
        sys.platform == "win32" or shutil.which("cc") is None,
        reason="needs a POSIX C compiler",
    ),
    pytest.mark.timeout(60),
]

HERE = Path(__file__).resolve().parent
HELPER_SOURCE = HERE / "c" / "channel_helper.c"

MODE_CHANGE = 1
MODE_BOOTSTRAP = 2
MODE_SENDER = 3

SOURCE = lib.DH_KIND_SOURCE_EVENTS
BOOTSTRAP = lib.DH_KIND_BOOTSTRAP_EVENTS
RESULTS = lib.DH_KIND_RESULTS

HAS_PAYLOAD = lib.DH_REC_HAS_PAYLOAD
OVERSIZE = lib.DH_REC_OVERSIZE
NULL_PAYLOAD = lib.DH_REC_NULL_PAYLOAD
BAD_HINT = lib.DH_REC_BAD_HINT

TIMEOUT = 10.0

_PROTOTYPES = """
Producer *producer_new(int mode, uintptr_t target, uintptr_t ctx, int64_t first_id,
                       int64_t count);
int producer_start(Producer *pr);
int producer_done(Producer *pr);
uint32_t producer_drops(Producer *pr, int64_t index);
void producer_join(Producer *pr);
void producer_free(Producer *pr);
Puller *puller_new(uintptr_t pull, uintptr_t ctx, uint64_t out_cap);
int puller_start(Puller *pu);
int puller_done(Puller *pu);
int64_t puller_got(Puller *pu);
void puller_free(Puller *pu);
int64_t pull_n(uintptr_t pull, uintptr_t ctx, int64_t n);
"""


def addr(cdata: Any) -> int:
    """The address of a host-side pointer, to hand to the helper library."""
    return int(ffi.cast("uintptr_t", cdata))


def ctx(key: int) -> Any:
    return ffi.cast("void *", key)


Helper = CHelper


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> Helper:
    return build_c_helper(HELPER_SOURCE, tmp_path_factory.mktemp("channel_helper"), _PROTOTYPES)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


class Producer:
    """A C thread pushing events ``first_id .. first_id + count - 1``."""

    def __init__(
        self, helper: Helper, mode: int, target: int, key: int, first_id: int, count: int
    ) -> None:
        self.helper = helper
        self.first_id = first_id
        self.count = count
        self.p = helper.lib.producer_new(mode, target, key, first_id, count)
        assert self.p != helper.ffi.NULL

    def configure(self, **options: int) -> Producer:
        for name, value in options.items():
            setattr(self.p, name, value)
        return self

    def start(self) -> Producer:
        assert self.helper.lib.producer_start(self.p) == 0
        return self

    @property
    def done(self) -> bool:
        return bool(self.helper.lib.producer_done(self.p))

    def wait(self, timeout: float = TIMEOUT) -> Producer:
        wait_for(lambda: self.done, "the producer thread", timeout)
        self.helper.lib.producer_join(self.p)
        return self

    def drops(self) -> list[int]:
        return [self.helper.lib.producer_drops(self.p, i) for i in range(self.count)]

    def drops_of(self, ids: range) -> list[int]:
        return [self.helper.lib.producer_drops(self.p, i - self.first_id) for i in ids]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.p, name)


class Puller:
    """A C thread pulling results until the pull callback returns NULL."""

    def __init__(self, helper: Helper, key: int, out_cap: int = 1 << 20) -> None:
        self.helper = helper
        self.p = helper.lib.puller_new(addr(lib.dh_result_pull_ptr()), key, out_cap)
        assert self.p != helper.ffi.NULL

    def configure(self, **options: int) -> Puller:
        for name, value in options.items():
            setattr(self.p, name, value)
        return self

    def start(self) -> Puller:
        assert self.helper.lib.puller_start(self.p) == 0
        return self

    @property
    def done(self) -> bool:
        return bool(self.helper.lib.puller_done(self.p))

    @property
    def got(self) -> int:
        return int(self.helper.lib.puller_got(self.p))

    def results(self) -> list[bytes]:
        data = self.helper.ffi.buffer(self.p.out, self.p.out_len)[:]
        out, off = [], 0
        while off < len(data):
            n = int.from_bytes(data[off : off + 4], sys.byteorder)
            out.append(data[off + 4 : off + 4 + n])
            off += 4 + n
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.p, name)


class Rig:
    """Channels and threads of one test, torn down in a safe order: channels
    are released first (which unblocks every producer and puller), then the
    threads are joined and their memory freed."""

    def __init__(self, helper: Helper) -> None:
        self.helper = helper
        self.channels: list[tuple[int, Notifier]] = []
        self.producers: list[Producer] = []
        self.pullers: list[Puller] = []

    def channel(
        self,
        kind: int,
        capacity: int,
        *,
        max_bytes: int = 1 << 24,
        drasi: bool = True,
        max_payload: int = 1 << 20,
    ) -> tuple[int, Notifier]:
        notifier = Notifier()
        flags = lib.DH_CHAN_DRASI_PAYLOAD if drasi else 0
        key = lib.dh_chan_new(kind, flags, capacity, max_bytes, max_payload, notifier.write_fd)
        assert key != 0
        self.channels.append((key, notifier))
        return key, notifier

    def producer(
        self,
        key: int,
        first_id: int,
        count: int,
        mode: int = MODE_CHANGE,
        target: int | None = None,
        **options: int,
    ) -> Producer:
        if target is None:
            push = lib.dh_change_push_ptr() if mode == MODE_CHANGE else lib.dh_bootstrap_push_ptr()
            target = addr(push)
        producer = Producer(self.helper, mode, target, key, first_id, count).configure(**options)
        self.producers.append(producer)
        return producer

    def puller(self, key: int, **options: int) -> Puller:
        puller = Puller(self.helper, key).configure(**options)
        self.pullers.append(puller)
        return puller

    def teardown(self) -> None:
        for key, _ in self.channels:
            lib.dh_chan_release(key)
        stuck: list[object] = []
        for producer in self.producers:
            try:
                producer.wait(5)
            except AssertionError:
                stuck.append(producer)  # leaked on purpose: its thread still runs
                continue
            self.helper.lib.producer_free(producer.p)
        for puller in self.pullers:
            try:
                wait_for(functools.partial(getattr, puller, "done"), "a puller", 5)
            except AssertionError:
                stuck.append(puller)
                continue
            self.helper.lib.puller_free(puller.p)
        for _, notifier in self.channels:
            notifier.close()
        assert not stuck, "threads still blocked after their channels were released"


@pytest.fixture
def rig(helper: Helper) -> Iterator[Rig]:
    r = Rig(helper)
    try:
        yield r
    finally:
        r.teardown()


# ---- draining ------------------------------------------------------------------


@dataclass
class Rec:
    source_id: bytes
    label: bytes
    entity_id: bytes
    payload: bytes | None
    flags: int
    payload_len: int
    timestamp_us: int
    sequence: int
    op: int

    @property
    def id(self) -> int:
        return int(self.entity_id[1:])


def drain(key: int) -> tuple[list[Rec], bool]:
    """One ``dh_events_take`` call, parsed; checks both arenas are used exactly."""
    batch = ffi.new("DhEventBatch *")
    n = lib.dh_events_take(key, batch)
    if n <= 0:
        return [], bool(batch.ended)
    assert n == batch.count
    hints = ffi.buffer(batch.hints, batch.nhints)[:]
    payloads = ffi.buffer(batch.payloads, batch.npayloads)[:] if batch.npayloads else b""
    out, hoff, poff = [], 0, 0
    flagged = 0
    for i in range(n):
        r = batch.records[i]
        assert (r.hint_offset, r.payload_offset) == (hoff, poff), "records follow each other"
        parts = []
        for length in (r.source_id_len, r.label_len, r.entity_id_len):
            parts.append(hints[hoff : hoff + length])
            assert hints[hoff + length] == 0  # each hint ends with a NUL
            hoff += length + 1
        payload = None
        if r.flags & HAS_PAYLOAD:
            payload = payloads[poff : poff + r.payload_len]
            poff += r.payload_len
        if r.flags & lib.DH_REC_ERRORS:
            flagged += 1
        source_id, label, entity_id = parts
        out.append(
            Rec(
                source_id=source_id,
                label=label,
                entity_id=entity_id,
                payload=payload,
                flags=int(r.flags),
                payload_len=int(r.payload_len),
                timestamp_us=int(r.timestamp_us),
                sequence=int(r.sequence),
                op=int(r.op),
            )
        )
    assert (hoff, poff) == (len(hints), len(payloads)), "the arenas hold exactly the events"
    assert flagged == batch.flagged
    return out, bool(batch.ended)


def drain_all(
    key: int,
    *,
    check: Callable[[], None] | None = None,
    pause: float = 0.0,
) -> list[Rec]:
    """Drain until the stream ends (polling; the wake-up path is tested apart)."""
    out: list[Rec] = []
    deadline = time.monotonic() + TIMEOUT
    while True:
        records, ended = drain(key)
        out.extend(records)
        if check is not None:
            check()
        if ended:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"stream did not end; {len(out)} records so far")
        if not records or pause:
            time.sleep(pause or 0.0005)


def stats(key: int) -> Any:
    out = ffi.new("DhChanStats *")
    assert lib.dh_chan_stats(key, out) == 0
    return out


def queued_is(key: int, n: int) -> bool:
    return bool(stats(key).queued == n)


def doc(i: int) -> bytes:
    return b'{"id":%d}' % i


def check_event(rec: Rec, i: int, first_id: int = 0) -> None:
    assert rec.source_id == b"s%d" % first_id
    assert rec.label == b"L%d" % (i % 3)
    assert rec.entity_id == b"e%d" % i
    assert rec.timestamp_us == 1_000_000 + i
    assert rec.op == i % 3
    assert rec.flags == HAS_PAYLOAD
    assert rec.payload == doc(i)
    assert rec.payload_len == len(doc(i))


# ---- source events ----------------------------------------------------------------


def test_events_arrive_in_order_and_are_released_once(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 64)
    producer = rig.producer(key, 0, 2000, send_eos=1).start()
    records = drain_all(key)
    producer.wait()
    assert [r.id for r in records] == list(range(2000))
    for i, rec in enumerate(records):
        check_event(rec, i)
    assert (producer.accepted, producer.refused) == (2000, 0)
    assert producer.eos_result == 0  # the end-of-stream call is answered false
    assert producer.drops() == [1] * 2000
    st = stats(key)
    assert (st.pushed, st.rejected, st.queued, st.eos, st.capacity) == (2000, 0, 0, 1, 64)


def test_concurrent_producers_keep_their_own_order(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 16)
    producers = [rig.producer(key, base, 1500).start() for base in (0, 100_000)]

    def end_when_done() -> None:
        for p in producers:
            p.wait()
        assert lib.dh_change_push(ctx(key), ffi.NULL) is False

    ender = threading.Thread(target=end_when_done)
    ender.start()
    records = drain_all(key)
    ender.join()
    assert len(records) == 3000
    for p in producers:
        mine = [r for r in records if r.source_id == b"s%d" % p.first_id]
        assert [r.id for r in mine] == list(range(p.first_id, p.first_id + 1500))
        for r in mine:
            check_event(r, r.id, p.first_id)
        assert p.drops() == [1] * 1500
    # The two streams really did interleave through the one channel.
    sources = [r.source_id for r in records]
    switches = sum(1 for a, b in itertools.pairwise(sources) if a != b)
    assert switches > 1


def test_back_pressure_blocks_the_producer_without_loss(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 4)
    producer = rig.producer(key, 0, 400, send_eos=1).start()
    wait_for(lambda: stats(key).queued == 4, "a full channel")
    time.sleep(0.05)
    st = stats(key)
    assert (st.queued, st.pushed) == (4, 4)  # blocked: nothing lost, nothing dropped
    assert not producer.done
    # Copied on push: the queued events were released on the plugin's thread.
    assert producer.drops() == [1] * 4 + [0] * 396

    def bounded() -> None:
        assert stats(key).queued <= 4

    records = drain_all(key, check=bounded, pause=0.0002)
    producer.wait()
    assert [r.id for r in records] == list(range(400))
    assert producer.accepted == 400
    assert producer.drops() == [1] * 400


def test_close_unblocks_a_blocked_producer(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 4)
    producer = rig.producer(key, 0, 10, stop_on_false=1).start()
    wait_for(lambda: stats(key).queued == 4, "a full channel")
    time.sleep(0.02)
    assert not producer.done
    lib.dh_chan_close(key)
    producer.wait(2)
    assert (producer.accepted, producer.refused, producer.first_refused_id) == (4, 1, 4)
    drops = producer.drops()
    assert drops[4] == 1  # the refused event was released by the host
    assert drops[:4] == [1] * 4  # queued as copies, released on push
    assert drops[5:] == [0] * 5  # never built: the producer stopped on false
    st = stats(key)
    assert (st.closed, st.rejected, st.queued) == (1, 1, 4)
    # What was queued before the close is still delivered, then the stream ends.
    records = drain_all(key)
    assert [r.id for r in records] == [0, 1, 2, 3]
    assert producer.drops()[:5] == [1] * 5


def test_pushes_after_end_of_stream_are_refused_and_released(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 8)
    first = rig.producer(key, 0, 3, send_eos=1).start().wait()
    late = rig.producer(key, 100, 5, send_eos=1).start().wait()
    assert (late.accepted, late.refused) == (0, 5)
    assert late.drops() == [1] * 5
    assert late.eos_result == 0
    records = drain_all(key)
    assert [r.id for r in records] == [0, 1, 2]
    assert first.drops() == [1, 1, 1]
    assert stats(key).rejected == 5


def test_release_frees_queued_events_and_refuses_late_calls(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 8)
    early = rig.producer(key, 0, 2).start().wait()
    assert early.drops() == [1, 1]  # copied and released on push
    assert stats(key).queued == 2
    lib.dh_chan_release(key)  # frees the queued copies
    # A plugin that keeps pushing with the stale key: refused, released, no crash.
    late = rig.producer(key, 10, 100, send_eos=1).start().wait()
    assert (late.accepted, late.refused) == (0, 100)
    assert late.drops() == [1] * 100
    assert late.eos_result == 0
    # Every entry point treats the stale key as unknown.
    assert lib.dh_chan_stats(key, ffi.new("DhChanStats *")) == -1
    records, ended = drain(key)
    assert (records, ended) == ([], True)
    assert lib.dh_chan_arm_consumer(key) == 1
    assert lib.dh_results_push(key, b"x", 1) == -1
    assert lib.dh_result_pull(ctx(key), ffi.NULL) == ffi.NULL
    assert lib.dh_change_push(ctx(key), ffi.NULL) is False
    lib.dh_chan_close(key)
    lib.dh_chan_release(key)


def test_release_unblocks_a_blocked_producer(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 2)
    producer = rig.producer(key, 0, 10, stop_on_false=1).start()
    wait_for(lambda: stats(key).queued == 2, "a full channel")
    time.sleep(0.02)
    lib.dh_chan_release(key)
    producer.wait(2)
    assert producer.refused == 1
    assert producer.drops()[: producer.accepted + 1] == [1] * (producer.accepted + 1)
    assert producer.drops()[producer.accepted + 1 :] == [0] * (9 - producer.accepted)


def test_release_accepts_nothing_more(rig: Rig) -> None:
    # Once a release has begun, a producer woken by the slots it frees must
    # be refused, not handed space in a channel that is going away: a full
    # channel of capacity C accepts exactly C events.  The race is timing
    # dependent, so it is run many times.
    accepted = []
    for _ in range(25):
        key, _ = rig.channel(SOURCE, 1)
        producer = rig.producer(key, 0, 10_000, stop_on_false=1).start()
        wait_for(functools.partial(queued_is, key, 1), "a full channel")
        time.sleep(0.001)
        lib.dh_chan_release(key)
        producer.wait(2)
        accepted.append(int(producer.accepted))
        n = producer.accepted + producer.refused
        assert producer.drops()[:n] == [1] * n
    assert accepted == [1] * 25


def test_keys_are_not_reused(rig: Rig) -> None:
    old = lib.dh_chan_new(SOURCE, 0, 4, 1 << 20, 1 << 20, -1)
    lib.dh_chan_release(old)
    new, _ = rig.channel(SOURCE, 4)
    assert new != old
    if new & 0xFFFFFFFF == old & 0xFFFFFFFF:
        assert new >> 32 != old >> 32  # same slot, another generation
    late = rig.producer(old, 0, 5).start().wait()
    assert late.refused == 5
    assert late.drops() == [1] * 5
    assert stats(new).pushed == 0  # the new channel saw nothing
    keys = set()
    for _ in range(500):
        k = lib.dh_chan_new(RESULTS, 0, 1, 1, 0, -1)
        assert k not in keys and k not in (old, new)
        keys.add(k)
        lib.dh_chan_release(k)


# Keys no channel can have: generation 0 (never issued) or a generation far
# beyond what any process reaches.
_never_issued = st.integers(0, 2**32 - 1) | st.integers(2**63, 2**64 - 1)


@settings(max_examples=300, deadline=None)
@given(key=_never_issued)
def test_unknown_keys_are_safe_everywhere(key: int) -> None:
    assert lib.dh_chan_stats(key, ffi.new("DhChanStats *")) == -1
    assert drain(key) == ([], True)
    assert lib.dh_chan_arm_consumer(key) == 1
    assert lib.dh_results_push(key, b"x", 1) == -1
    assert lib.dh_result_pull(ctx(key), ffi.NULL) == ffi.NULL
    assert lib.dh_change_push(ctx(key), ffi.NULL) is False
    assert lib.dh_bootstrap_push(ctx(key), ffi.NULL) is False
    lib.dh_chan_close(key)
    lib.dh_chan_release(key)


def test_oversize_payload_is_flagged_and_not_copied(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 16, max_payload=64)
    producer = rig.producer(key, 0, 30, send_eos=1, big_every=3, big_len=100_000).start()
    records = drain_all(key)
    producer.wait()
    assert [r.id for r in records] == list(range(30))
    for r in records:
        if r.id % 3 == 0:
            assert r.flags == OVERSIZE
            assert r.payload is None
            assert r.payload_len == 100_000
        else:
            check_event(r, r.id)
    assert producer.drops() == [1] * 30


def test_payload_at_the_limit_is_copied(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 4, max_payload=5000)
    producer = rig.producer(key, 0, 1, send_eos=1, big_every=1, big_len=5000).start()
    records = drain_all(key)
    producer.wait()
    assert records[0].flags == HAS_PAYLOAD
    assert records[0].payload == b"x" * 5000


def test_bad_hints_are_flagged_and_not_read(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 16)
    producer = rig.producer(key, 0, 20, send_eos=1, bad_hint_every=2).start()
    records = drain_all(key)
    producer.wait()
    assert len(records) == 20
    for i, r in enumerate(records):
        if i % 2 == 0:
            assert r.flags == BAD_HINT | HAS_PAYLOAD
            assert (r.label, r.entity_id) == (b"", b"")  # NULL+len and over-long: dropped
            assert r.source_id == b"s0"
            assert r.payload == doc(i)
        else:
            check_event(r, i)
    assert producer.drops() == [1] * 20


def test_null_payload_data_is_flagged(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 16)
    producer = rig.producer(key, 0, 10, send_eos=1, null_data_every=5).start()
    records = drain_all(key)
    producer.wait()
    for r in records:
        if r.id % 5 == 0:
            assert r.flags == NULL_PAYLOAD
            assert r.payload is None
        else:
            check_event(r, r.id)
    assert producer.drops() == [1] * 10


def test_payload_lengths_are_read_once(rig: Rig) -> None:
    # A plugin thread flips each payload's length between 8 and 4096 bytes
    # while the host copies it.  A host that read the length twice (once to
    # size its buffer, once to copy) would write past its buffer or get its
    # arena accounting wrong; read once, every payload is one of the two.
    n, big = 1000, 4096
    key, _ = rig.channel(SOURCE, 64, max_payload=1 << 20)
    producer = rig.producer(key, 0, n, send_eos=1, flip_len=big).start()
    records = drain_all(key)  # drain() checks both arenas are used exactly
    producer.wait()
    assert producer.flips > 0
    assert [r.id for r in records] == list(range(n))
    lengths = {len(r.payload or b"") for r in records}
    assert lengths == {8, big}  # both lengths were seen
    assert all(r.payload == b"x" * len(r.payload or b"") for r in records)
    assert producer.drops() == [1] * n


def test_opaque_payload_plugins_still_release_each_event(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 16, drasi=False)
    producer = rig.producer(key, 0, 50, send_eos=1).start()
    records = drain_all(key)
    producer.wait()
    assert [r.id for r in records] == list(range(50))
    assert all(r.flags == 0 and r.payload is None and r.payload_len == 0 for r in records)
    assert producer.drops() == [1] * 50


def size(r: Rec) -> int:
    """Bytes an event takes in a channel: its hints (each with a NUL) and payload."""
    return len(r.source_id) + len(r.label) + len(r.entity_id) + 3 + r.payload_len


def test_byte_bound_blocks_the_producer(rig: Rig) -> None:
    budget = 60
    key, _ = rig.channel(SOURCE, 64, max_bytes=budget)
    producer = rig.producer(key, 0, 40, send_eos=1).start()
    wait_for(lambda: stats(key).pushed > 0, "a first push")
    time.sleep(0.05)
    st = stats(key)
    # Held back by bytes, far below the event bound.
    assert 0 < st.queued < 10 and st.queued_bytes <= budget and st.max_bytes == budget
    assert not producer.done
    seen: list[Rec] = []
    deadline = time.monotonic() + TIMEOUT
    while True:
        batch, ended = drain(key)
        assert sum(size(r) for r in batch) <= budget
        seen.extend(batch)
        if ended:
            break
        assert time.monotonic() < deadline
        time.sleep(0.001)
    producer.wait()
    assert [r.id for r in seen] == list(range(40))
    assert producer.drops() == [1] * 40


def test_an_event_over_the_byte_bound_passes_alone(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 64, max_bytes=5)
    producer = rig.producer(key, 0, 12, send_eos=1).start()
    sizes = []
    deadline = time.monotonic() + TIMEOUT
    seen: list[Rec] = []
    while True:
        batch, ended = drain(key)
        if batch:
            sizes.append(len(batch))
            seen.extend(batch)
        if ended:
            break
        assert time.monotonic() < deadline
        time.sleep(0.002)
    producer.wait()
    assert [r.id for r in seen] == list(range(12))
    assert set(sizes) == {1}


def test_take_moves_everything_queued(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 16)
    rig.producer(key, 0, 7, send_eos=1).start().wait()
    batch, ended = drain(key)
    assert [r.id for r in batch] == list(range(7)) and ended
    assert drain(key) == ([], True)


# ---- bootstrap events ----------------------------------------------------------------


def test_bootstrap_channel_carries_sequences(rig: Rig) -> None:
    key, _ = rig.channel(BOOTSTRAP, 8)
    producer = rig.producer(key, 0, 300, mode=MODE_BOOTSTRAP, send_eos=1).start()
    records = drain_all(key)
    producer.wait()
    assert [r.sequence for r in records] == list(range(300))
    for i, r in enumerate(records):
        assert (r.entity_id, r.label, r.op) == (b"e%d" % i, b"L%d" % (i % 3), 0)
        assert r.timestamp_us == 2_000_000 + i
        assert r.payload == doc(i)
    assert producer.eos_result == 0
    assert producer.drops() == [1] * 300


def test_kind_mismatch_is_refused_and_released(rig: Rig) -> None:
    bkey, _ = rig.channel(BOOTSTRAP, 8)
    skey, _ = rig.channel(SOURCE, 8)
    wrong1 = rig.producer(bkey, 0, 5, mode=MODE_CHANGE).start().wait()
    wrong2 = rig.producer(skey, 0, 5, mode=MODE_BOOTSTRAP).start().wait()
    for p in (wrong1, wrong2):
        assert (p.accepted, p.refused) == (0, 5)
        assert p.drops() == [1] * 5
    assert stats(bkey).queued == stats(skey).queued == 0


def test_host_bootstrap_sender(rig: Rig) -> None:
    key, _ = rig.channel(BOOTSTRAP, 4)
    sender = ffi.new("FfiBootstrapSender *")
    lib.dh_bootstrap_sender_init(sender, key)
    assert lib.dh_bootstrap_sender_send(sender.state, ffi.NULL) == -1  # no event
    producer = rig.producer(key, 0, 200, mode=MODE_SENDER, target=addr(sender)).start()

    def close_when_done() -> None:
        producer.wait()
        lib.dh_chan_close(key)

    closer = threading.Thread(target=close_when_done)
    closer.start()
    records = drain_all(key)
    closer.join()
    assert (producer.accepted, producer.refused) == (200, 0)
    assert [r.sequence for r in records] == list(range(200))
    assert producer.drops() == [1] * 200
    # Once the receiving side is closed, send reports it and still takes the payload.
    late = rig.producer(key, 1000, 3, mode=MODE_SENDER, target=addr(sender)).start().wait()
    assert (late.accepted, late.refused) == (0, 3)
    assert late.drops() == [1] * 3
    sender.drop_fn(sender.state)


# ---- query results (host -> reaction) -------------------------------------------------


def push_result(key: int, data: bytes) -> int:
    return int(lib.dh_results_push(key, data, len(data)))


def test_results_flow_to_a_pulling_thread(rig: Rig) -> None:
    key, _ = rig.channel(RESULTS, 4)
    docs = [b""] + [b"result-%d" % i for i in range(1, 300)]
    for d in docs[:4]:
        assert push_result(key, d) == 0
    assert push_result(key, docs[4]) == 1  # full: not taken
    assert stats(key).queued == 4
    puller = rig.puller(key, delay_us=50).start()
    deadline = time.monotonic() + TIMEOUT
    for d in docs[4:]:
        while (rc := push_result(key, d)) == 1:
            assert time.monotonic() < deadline
            time.sleep(0.0002)
        assert rc == 0
    wait_for(lambda: stats(key).queued == 0 and puller.got == len(docs), "the puller")
    assert not puller.done  # blocked in pull, waiting for more
    lib.dh_chan_close(key)
    wait_for(lambda: puller.done, "pull to return NULL after close", 2)
    assert puller.results() == docs
    assert puller.null_data == 0  # even the empty result has a non-NULL data pointer
    st = stats(key)
    assert (st.pushed, st.closed) == (len(docs), 1)


def test_close_makes_a_blocked_pull_return_null_promptly(rig: Rig) -> None:
    key, _ = rig.channel(RESULTS, 4)
    puller = rig.puller(key, extra_calls=10_000).start()
    time.sleep(0.05)
    assert not puller.done  # blocked: nothing to pull
    t0 = time.monotonic()
    lib.dh_chan_close(key)
    wait_for(lambda: puller.done, "pull to return NULL", 2)
    assert time.monotonic() - t0 < 1.0
    assert puller.got == 0
    assert puller.extra_nulls == 10_000  # and keeps returning NULL however often called
    assert push_result(key, b"late") == -1


def test_pull_after_close_returns_null_even_with_queued_results(rig: Rig, helper: Helper) -> None:
    key, _ = rig.channel(RESULTS, 4)
    for i in range(3):
        assert push_result(key, b"r%d" % i) == 0
    lib.dh_chan_close(key)
    assert helper.lib.pull_n(addr(lib.dh_result_pull_ptr()), key, 100) == 100
    lib.dh_chan_release(key)  # frees the three queued results with their drop_fn
    assert lib.dh_result_pull(ctx(key), ffi.NULL) == ffi.NULL


def test_release_wakes_a_blocked_pull(rig: Rig) -> None:
    key, _ = rig.channel(RESULTS, 2)
    puller = rig.puller(key, extra_calls=100).start()
    time.sleep(0.03)
    assert not puller.done
    lib.dh_chan_release(key)
    wait_for(lambda: puller.done, "pull to return NULL after release", 2)
    assert puller.extra_nulls == 100


def test_results_push_refusals(rig: Rig) -> None:
    skey, _ = rig.channel(SOURCE, 2)
    assert push_result(skey, b"x") == -1  # not a results channel
    rkey, _ = rig.channel(RESULTS, 2)
    lib.dh_chan_close(rkey)
    assert push_result(rkey, b"x") == -1


# ---- waking the event loop ---------------------------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def wait_woken(notifier: Notifier) -> int:
    """Wait for the notifier while another task keeps running; returns how
    many times that task ran (the loop was not blocked)."""
    ticks = 0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await anyio.sleep(0.002)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        with anyio.fail_after(5):
            await notifier.wait()
        done.set()
    return ticks


@pytest.mark.anyio
async def test_push_wakes_an_armed_consumer(rig: Rig) -> None:
    key, notifier = rig.channel(SOURCE, 8)
    notifier.clear()
    assert lib.dh_chan_arm_consumer(key) == 0  # empty and open: armed
    producer = rig.producer(key, 0, 1, start_delay_ms=60).start()
    ticks = await wait_woken(notifier)
    assert ticks >= 2  # the loop kept running while it waited
    records, ended = drain(key)
    assert [r.id for r in records] == [0]
    assert not ended
    producer.wait()


@pytest.mark.anyio
async def test_arm_reports_ready_channels(rig: Rig) -> None:
    key, _ = rig.channel(SOURCE, 8)
    rig.producer(key, 0, 1).start().wait()
    assert lib.dh_chan_arm_consumer(key) == 1  # something queued
    drain(key)
    assert lib.dh_chan_arm_consumer(key) == 0
    assert lib.dh_change_push(ctx(key), ffi.NULL) is False
    assert lib.dh_chan_arm_consumer(key) == 1  # ended
    key2, _ = rig.channel(SOURCE, 8)
    lib.dh_chan_close(key2)
    assert lib.dh_chan_arm_consumer(key2) == 1  # closed
    await anyio.sleep(0)


@pytest.mark.anyio
async def test_end_of_stream_wakes_the_consumer(rig: Rig) -> None:
    key, notifier = rig.channel(BOOTSTRAP, 8)
    notifier.clear()
    assert lib.dh_chan_arm_consumer(key) == 0
    producer = rig.producer(key, 0, 0, mode=MODE_BOOTSTRAP, send_eos=1, start_delay_ms=30)
    producer.start()
    await wait_woken(notifier)
    assert drain(key) == ([], True)
    producer.wait()


@pytest.mark.anyio
async def test_close_wakes_the_consumer(rig: Rig) -> None:
    key, notifier = rig.channel(SOURCE, 8)
    notifier.clear()
    assert lib.dh_chan_arm_consumer(key) == 0

    def close_later() -> None:
        time.sleep(0.03)
        lib.dh_chan_close(key)

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, close_later)
        await wait_woken(notifier)
    assert drain(key) == ([], True)


@pytest.mark.anyio
async def test_free_space_wakes_a_waiting_results_producer(rig: Rig) -> None:
    key, notifier = rig.channel(RESULTS, 2)
    assert push_result(key, b"a") == 0
    assert push_result(key, b"b") == 0
    notifier.clear()
    assert push_result(key, b"c") == 1  # full: the producer is armed
    puller = rig.puller(key).start()
    await wait_woken(notifier)
    # The wake-up comes from a pull that freed a slot, so the push now fits.
    assert push_result(key, b"c") == 0
    with anyio.fail_after(5):
        while puller.got < 3:
            await anyio.sleep(0.001)
    lib.dh_chan_close(key)
    with anyio.fail_after(5):
        while not puller.done:
            await anyio.sleep(0.001)
    assert puller.results() == [b"a", b"b", b"c"]


@pytest.mark.anyio
async def test_async_consumer_with_back_pressure(rig: Rig) -> None:
    key, notifier = rig.channel(SOURCE, 4)
    producer = rig.producer(key, 0, 3000, send_eos=1).start()
    received: list[Rec] = []
    waits = 0
    with anyio.fail_after(TIMEOUT):
        while True:
            records, ended = drain(key)
            received.extend(records)
            if ended:
                break
            if not records and lib.dh_chan_arm_consumer(key) == 0:
                waits += 1
                await notifier.wait()
    producer.wait()
    assert [r.id for r in received] == list(range(3000))
    assert producer.drops() == [1] * 3000
    assert waits > 0


# ---- waking a sleeping puller: batched, never left unannounced -------------------------


def test_a_sleeping_puller_is_woken_once_enough_results_are_queued(rig: Rig) -> None:
    key, _ = rig.channel(RESULTS, 64)  # wakes a sleeping puller at 16 queued
    puller = rig.puller(key).start()
    time.sleep(0.05)  # asleep in its pull
    codes = [push_result(key, b"r%d" % i) for i in range(15)]
    assert codes == [lib.DH_WAKE_OWED] * 15  # queued, the wake-up left to the caller
    time.sleep(0.05)
    assert puller.got == 0  # not woken for each result
    assert push_result(key, b"r15") == lib.DH_OK  # the 16th wakes it
    wait_for(lambda: puller.got == 16, "the puller to take the batch")
    lib.dh_chan_close(key)
    wait_for(lambda: puller.done, "the puller to end")
    assert puller.results() == [b"r%d" % i for i in range(16)]


def test_the_owed_wake_up_delivers_a_single_result(rig: Rig) -> None:
    key, _ = rig.channel(RESULTS, 64)
    puller = rig.puller(key).start()
    time.sleep(0.05)
    assert push_result(key, b"only") == lib.DH_WAKE_OWED
    time.sleep(0.05)
    assert puller.got == 0
    lib.dh_results_wake(key)
    wait_for(lambda: puller.got == 1, "the owed wake-up")
    lib.dh_chan_close(key)
    wait_for(lambda: puller.done, "the puller to end")
    assert puller.results() == [b"only"]


@pytest.mark.anyio
async def test_result_channel_announces_at_the_end_of_the_tick(helper: Helper) -> None:
    channel = ResultChannel()
    key = channel.open(64)
    puller = Puller(helper, key).start()
    try:
        await anyio.sleep(0.05)  # asleep in its pull
        assert channel.push(b"one") == lib.DH_OK  # the wake-up is owed to the loop
        with anyio.fail_after(5):
            while puller.got < 1:
                await anyio.sleep(0.001)
        # A batch: one lock, one wake-up, in order.
        documents = [b"doc-%d" % i for i in range(40)]
        assert channel.push_many(documents) == 40
        with anyio.fail_after(5):
            while puller.got < 41:
                await anyio.sleep(0.001)
        # More than fits: the rest waits for room.
        assert channel.push_many([b"x"] * 100) <= 64
    finally:
        channel.close()
        wait_for(lambda: puller.done, "the puller to end")
        channel.shutdown()
        pulled = puller.results()
        helper.lib.puller_free(puller.p)
    assert pulled[:41] == [b"one", *documents]


@pytest.mark.anyio
async def test_closing_a_notifier_under_a_waiting_task_raises_closed_error() -> None:
    for _ in range(20):
        notifier = Notifier()
        outcome: list[BaseException] = []

        async def waiter(n: Notifier = notifier, outcome: list[BaseException] = outcome) -> None:
            try:
                await n.wait()
            except BaseException as exc:  # recorded for the assertion below
                outcome.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.sleep(0.01)
                await anyio.to_thread.run_sync(notifier.close)  # from another thread
        assert len(outcome) == 1 and isinstance(outcome[0], ClosedError)
        with pytest.raises(ClosedError):
            await notifier.wait()
        notifier.notify()  # harmless once closed
        notifier.clear()
        assert notifier.closed


def test_running_out_of_channels_is_one_typed_error() -> None:
    # A real limit, in a child process: few file descriptors, so the
    # channels' notifiers run out.
    code = """
import resource
from drasi_host._abi import lib
from drasi_host.channels import ChannelLimitError, EventChannel
from drasi_host.errors import DrasiHostError
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
channels = []
try:
    for _ in range(1000):
        channels.append(EventChannel(lib.DH_KIND_SOURCE_EVENTS, None, "probe"))
except ChannelLimitError as exc:
    assert isinstance(exc, DrasiHostError) and not isinstance(exc, MemoryError)
    print("limit", len(channels))
for c in channels:
    c.release()
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("limit ")
    assert 0 < int(proc.stdout.split()[1]) < 64


def test_push_many_on_a_full_ring_takes_nothing_and_arms(rig: Rig, helper: Helper) -> None:
    key, notifier = rig.channel(RESULTS, 4)
    data = b"abcdef"
    lens = ffi.new("uint64_t[]", [1, 2, 3])
    assert lib.dh_results_push_many(key, data, lens, 3) == 3
    assert lib.dh_results_push_many(key, data, lens, 3) == 1  # the ring is full at 4
    notifier.clear()
    for _ in range(50):
        assert lib.dh_results_push_many(key, data, lens, 3) == 0  # full: nothing, no error
    assert helper.lib.pull_n(addr(lib.dh_result_pull_ptr()), key, 2) == 0
    assert lib.dh_results_push_many(key, data, lens, 3) == 2
    assert stats(key).queued == 4


def _push_hinted(channel: Any, hints: list[tuple[bytes, bytes, bytes]]) -> None:
    """Push events with these routing hints through the real push callback
    (the envelope comes from malloc: the callback frees it)."""
    for i, texts in enumerate(hints):
        keep = [ffi.new("char[]", text) for text in texts]
        event = ffi.cast("FfiSourceEvent *", lib.malloc(ffi.sizeof("FfiSourceEvent")))
        event.opaque = ffi.NULL
        event.timestamp_us = i
        event.op = 0
        for field, text, ptr in zip(("source_id", "label", "entity_id"), texts, keep, strict=True):
            setattr(event, field, (ptr, len(text)))
        event.drop_fn = ffi.NULL
        assert lib.dh_change_push(channel.ctx, event) is True


@pytest.mark.parametrize("nul_at", [None, 0, 1, 3])
def test_hints_holding_nul_bytes_keep_their_place(nul_at: int | None) -> None:
    """Hints are copied as they are; a NUL byte inside one (found by the
    consumer) sends the batch down the per-record path, with the same
    strings in the same order."""
    hints = [(b"src", f"L{i}".encode(), f"e{i}".encode()) for i in range(5)]
    if nul_at is not None:
        hints[nul_at] = (b"s\0rc", b"\0", b"e\0\0x")
    channel = EventChannel(lib.DH_KIND_SOURCE_EVENTS, None, "nul test")
    try:
        _push_hinted(channel, hints)
        got: collections.deque[Any] = collections.deque()
        assert channel.drain(got, 2) == 0  # two now, the rest from the same batch
        channel.drain(got)
        assert [(e.source_id, e.label, e.entity_id) for e in got] == [
            tuple(h.decode() for h in hint) for hint in hints
        ]
        _push_hinted(channel, hints)
        batch = channel.take_batch(100)
        assert isinstance(batch, EventBatch)
        assert list(batch.labels) == [h[1].decode() for h in hints]
        assert list(batch.entity_ids) == [h[2].decode() for h in hints]
    finally:
        channel.close()
        channel.release()
