"""The data paths of FFI 0.13 components, through the real C callbacks.

Events: 0.13 envelopes and MessagePack payloads are built on the C heap (the
module's ``malloc``, or the C threads of ``tests/c/channel013_helper.c``) and
pushed through the 0.13 push callbacks of ``drasi_host._ffi013``
(:func:`drasi_host._abi013.change_push_ptr`, ...), which copy them into the
channels of ``drasi_host._ffi``; Python decodes the batches into the same
event objects the 0.4 path makes.  Every payload release is counted, so
"dropped exactly once" is observed, whichever way an event leaves.

Results: the 0.13 reaction's forwarder is a C thread pulling 0.13
``FfiQueryResult`` envelopes through the host's callback and making the exit
call; the end-of-bootstrap result comes from a C thread too.
"""

from __future__ import annotations

import collections
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from c_helpers import CHelper, build_c_helper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_msgpack013 import EXAMPLE_D, _bootstrap_events, _source_events

from drasi_host import _abi013
from drasi_host import _msgpack013 as mp
from drasi_host._abi import ffi, lib
from drasi_host._abi013 import ffi as ffi13
from drasi_host._abi013 import lib as lib13
from drasi_host._events013 import (
    RESULT_CODEC_013,
    BootstrapOutcome,
    EventChannel013,
    ResultChannel013,
    bootstrap_event_from_payload,
    source_event_from_payload,
)
from drasi_host.channels import EventBatch, EventChannel
from drasi_host.errors import PayloadFormatError, PluginCallError, PluginProtocolError
from drasi_host.events import BootstrapEvent, ControlEvent, SourceEventWrapper
from drasi_host.models import (
    ChangeOp,
    Element,
    ElementReference,
    QueryResult,
    ResultDiff,
    SourceChange,
)
from drasi_host.payloads import JsonCodec

pytestmark = [
    pytest.mark.skipif(
        sys.platform == "win32" or shutil.which("cc") is None,
        reason="needs a POSIX C compiler",
    ),
]

HERE = Path(__file__).resolve().parent
HELPER_SOURCE = HERE / "c" / "channel013_helper.c"
SOURCE = lib.DH_KIND_SOURCE_EVENTS
BOOTSTRAP = lib.DH_KIND_BOOTSTRAP_EVENTS
MODE_SOURCE, MODE_BOOTSTRAP = 1, 2
TIMEOUT = 20.0

_PROTOTYPES = """
Producer013 *producer013_new(int mode, uintptr_t push, uintptr_t ctx, int64_t count,
                             const uint8_t *docs, const uint64_t *doc_lens, int64_t ndocs);
int producer013_start(Producer013 *pr);
void producer013_run(Producer013 *pr);
int producer013_done(Producer013 *pr);
uint32_t producer013_drops(Producer013 *pr, int64_t i);
void producer013_join(Producer013 *pr);
void producer013_free(Producer013 *pr);
Puller013 *puller013_new(uintptr_t pull, uintptr_t ctx, uint64_t out_cap);
int puller013_start(Puller013 *pu);
int puller013_done(Puller013 *pu);
void puller013_free(Puller013 *pu);
uint32_t result_drop_count(void);
int result_fire(uintptr_t cb, uintptr_t ctx, int with_result, int64_t count,
                const uint8_t *position, uint64_t position_len, const uint8_t *error,
                uint64_t error_len, int delay_ms);
"""

S1_42 = ElementReference("s1", "42")


def addr(cdata: Any, module_ffi: Any = ffi13) -> int:
    return int(module_ffi.cast("uintptr_t", cdata))


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


Helper = CHelper


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> Helper:
    return build_c_helper(HELPER_SOURCE, tmp_path_factory.mktemp("channel013_helper"), _PROTOTYPES)


class Producer:
    """A C thread pushing ``count`` events whose payloads cycle through ``docs``."""

    def __init__(
        self, helper: Helper, mode: int, key: int, docs: list[bytes], count: int, **options: int
    ) -> None:
        self.helper = helper
        self.count = count
        h = helper.ffi
        self._docs = h.from_buffer(b"".join(docs) or b"\0")
        self._lens = h.new("uint64_t[]", [len(d) for d in docs])
        push = _abi013.change_push_ptr() if mode == MODE_SOURCE else _abi013.bootstrap_push_ptr()
        self.p = helper.lib.producer013_new(
            mode, addr(push), key, count, self._docs, self._lens, len(docs)
        )
        for name, value in options.items():
            setattr(self.p, name, value)

    def start(self) -> Producer:
        assert self.helper.lib.producer013_start(self.p) == 0
        return self

    def run(self) -> Producer:
        self.helper.lib.producer013_run(self.p)
        return self

    def join(self) -> Producer:
        wait_for(lambda: bool(self.helper.lib.producer013_done(self.p)), "the producer")
        self.helper.lib.producer013_join(self.p)
        return self

    def drops(self) -> list[int]:
        return [self.helper.lib.producer013_drops(self.p, i) for i in range(self.count)]

    def free(self) -> None:
        self.helper.lib.producer013_free(self.p)


# ---- expected objects ------------------------------------------------------------


def _ref(r: mp.ElementReference) -> ElementReference:
    return ElementReference(r.source_id, r.element_id)


def expected_change(change: mp.Change) -> SourceChange:
    """What the JSON path's public constructors make of a decoded change."""
    e = change.element
    return SourceChange(
        change.op,
        Element(
            e.type,
            _ref(e.reference),
            list(e.labels),
            e.effective_from,
            dict(e.properties),
            None if e.in_node is None else _ref(e.in_node),
            None if e.out_node is None else _ref(e.out_node),
        ),
    )


def expected_control(control: mp.Control) -> ControlEvent:
    data = dict(control.data)
    if "element_ref" in data:
        data["element_ref"] = _ref(data["element_ref"])
    return ControlEvent(control.kind, data)


def check_event(
    event: SourceEventWrapper, payload: mp.SourceEventPayload | mp.BootstrapEventPayload
) -> None:
    assert event.source_id == payload.source_id
    assert event.timestamp_us == payload.timestamp_us
    if payload.change is not None:
        element = payload.change.element
        assert event.op is payload.change.op
        assert event.change == expected_change(payload.change)
        assert event.control is None
        assert event.label == (element.labels[0] if element.labels else "")
        assert event.entity_id == element.reference.element_id
    else:
        assert payload.control is not None
        assert event.change is None
        assert event.control == expected_control(payload.control)
        assert event.op is ChangeOp.UPDATE
        assert event.label == ""
        ref = payload.control.data.get("element_ref")
        assert event.entity_id == (ref.element_id if ref is not None else "")
    if isinstance(payload, mp.BootstrapEventPayload):
        assert isinstance(event, BootstrapEvent)
        assert event.sequence == payload.sequence


# ---- pushing from Python through the real callbacks ---------------------------------


class Drops:
    """A C drop function (the module's own ``dh13_bytes_free``) wrapped to
    count calls per buffer; the callback is a cffi callback, called from the
    pushing thread."""

    def __init__(self) -> None:
        self.calls: collections.Counter[int] = collections.Counter()
        self.lens: dict[int, int] = {}
        self.fn = ffi13.callback("void(uint8_t *, size_t)", self._drop)

    def _drop(self, ptr: Any, length: int) -> None:
        key = addr(ptr)
        self.calls[key] += 1
        self.lens[key] = length
        lib13.dh13_bytes_free(ptr, length)


def c_bytes(data: bytes) -> Any:
    buf = ffi13.cast("uint8_t *", lib13.malloc(max(1, len(data))))
    assert buf != ffi13.NULL
    ffi13.memmove(buf, data, len(data))
    return buf


def source_envelope(payload: Any, length: int, drop: Any, op: int = 1, ts: int = 7) -> Any:
    ev = ffi13.cast("FfiSourceEvent *", lib13.malloc(ffi13.sizeof("FfiSourceEvent")))
    ev.payload_ptr = payload
    ev.payload_len = length
    ev.payload_drop_fn = drop
    ev.op = op
    ev.timestamp_us = ts
    return ev


def bootstrap_envelope(payload: Any, length: int, drop: Any, seq: int = 0) -> Any:
    ev = ffi13.cast("FfiBootstrapEvent *", lib13.malloc(ffi13.sizeof("FfiBootstrapEvent")))
    ev.payload_ptr = payload
    ev.payload_len = length
    ev.payload_drop_fn = drop
    ev.timestamp_us = 9
    ev.sequence = seq
    return ev


def push_source(channel_key: int, data: bytes, drops: Drops, **kw: Any) -> tuple[bool, int]:
    """Push one event; whether it was taken, and how often its payload was
    dropped during the push (the count is taken at once: the allocator may
    hand the same address out again)."""
    buf = c_bytes(data)
    ok = _abi013.change_push_ptr()(
        ffi13.cast("void *", channel_key), source_envelope(buf, len(data), drops.fn, **kw)
    )
    return bool(ok), drops.calls.pop(addr(buf), 0)


def push_bootstrap(channel_key: int, data: bytes, drops: Drops, seq: int = 0) -> tuple[bool, int]:
    buf = c_bytes(data)
    ok = _abi013.bootstrap_push_ptr()(
        ffi13.cast("void *", channel_key), bootstrap_envelope(buf, len(data), drops.fn, seq)
    )
    return bool(ok), drops.calls.pop(addr(buf), 0)


def drained(channel: EventChannel) -> list[Any]:
    out: collections.deque[Any] = collections.deque()
    while True:
        channel.drain(out)
        if not channel.has_pending:
            return list(out)


@pytest.fixture
def source_channel() -> Iterator[EventChannel013]:
    channel = EventChannel013(SOURCE, "0.13 source")
    yield channel
    channel.release()


@pytest.fixture
def bootstrap_channel() -> Iterator[EventChannel013]:
    channel = EventChannel013(BOOTSTRAP, "0.13 bootstrap")
    yield channel
    channel.release()


_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(st.lists(_source_events(), min_size=1, max_size=8))
def test_generated_source_events_come_out_as_model_objects(
    payloads: list[mp.SourceEventPayload],
) -> None:
    channel = EventChannel013(SOURCE, "gen")
    drops = Drops()
    try:
        for payload in payloads:
            assert push_source(channel.key, mp.encode_source_event(payload), drops, op=1) == (
                True,
                1,
            )
        events = drained(channel)
        assert len(events) == len(payloads)
        for event, payload, data in zip(
            events, payloads, map(mp.encode_source_event, payloads), strict=True
        ):
            assert type(event) is SourceEventWrapper
            check_event(event, payload)
            assert event.payload == data
    finally:
        channel.release()


@_SETTINGS
@given(st.lists(_bootstrap_events(), min_size=1, max_size=8))
def test_generated_bootstrap_events_come_out_as_model_objects(
    payloads: list[mp.BootstrapEventPayload],
) -> None:
    channel = EventChannel013(BOOTSTRAP, "gen")
    drops = Drops()
    try:
        for i, payload in enumerate(payloads):
            ok, dropped = push_bootstrap(channel.key, mp.encode_bootstrap_event(payload), drops, i)
            assert ok and dropped == 1
        events = drained(channel)
        assert len(events) == len(payloads)
        for event, payload in zip(events, payloads, strict=True):
            assert type(event) is BootstrapEvent
            check_event(event, payload)
    finally:
        channel.release()


def _delete_payload() -> mp.SourceEventPayload:
    return mp.SourceEventPayload(
        source_id="s1",
        timestamp_us=1_700_000_000_001_000,
        change=mp.Change(
            ChangeOp.DELETE, mp.Element(None, mp.ElementReference("s1", "42"), ("Person",), 5, {})
        ),
        control=None,
        sequence=None,
        source_position=b"\x01\x02\x03",
    )


def test_a_delete_is_the_metadata_only_element(source_channel: EventChannel013) -> None:
    drops = Drops()
    assert push_source(source_channel.key, mp.encode_source_event(_delete_payload()), drops)[0]
    (event,) = drained(source_channel)
    assert event.op is ChangeOp.DELETE
    assert event.change == SourceChange(
        ChangeOp.DELETE,
        Element(None, S1_42, ("Person",), 5, {}, in_node=None, out_node=None),
    )
    assert event.change.element.type is None
    assert (event.label, event.entity_id, event.control) == ("Person", "42", None)
    # the op hint is only a hint: an invalid one changes nothing
    assert push_source(
        source_channel.key, mp.encode_source_event(_delete_payload()), drops, op=99
    ) == (True, 1)
    (again,) = drained(source_channel)
    assert again.op is ChangeOp.DELETE and again.change == event.change
    # such an element has no 0.4 document form
    with pytest.raises(PayloadFormatError, match="no type"):
        event.payload_for(JsonCodec())


def test_control_events_have_no_change(source_channel: EventChannel013) -> None:
    drops = Drops()
    payload = mp.SourceEventPayload(
        source_id="s1", timestamp_us=3, change=None, control=mp.Control("FuturesDue", {})
    )
    future = mp.SourceEventPayload(
        source_id="s1",
        timestamp_us=4,
        change=None,
        control=mp.Control(
            "Future",
            {
                "element_ref": mp.ElementReference("s1", "7"),
                "original_time": 1,
                "due_time": 2,
                "group_signature": 3,
            },
        ),
    )
    for p in (payload, future):
        assert push_source(source_channel.key, mp.encode_source_event(p), drops, op=1)[0]
    due, fut = drained(source_channel)
    assert due.change is None and due.control == ControlEvent("FuturesDue", {})
    assert fut.change is None and fut.entity_id == "7"
    assert fut.control == ControlEvent(
        "Future",
        {
            "element_ref": ElementReference("s1", "7"),
            "original_time": 1,
            "due_time": 2,
            "group_signature": 3,
        },
    )
    assert hash(fut.control) == hash(ControlEvent("Future", {}))  # data is not hashed
    with pytest.raises(AttributeError):
        fut.control.kind = "x"  # type: ignore[misc]
    with pytest.raises(PayloadFormatError, match="Future event carries no change"):
        fut.payload_for(JsonCodec())


def test_0_4_events_have_no_control() -> None:
    event = SourceEventWrapper("s", 1, ChangeOp.INSERT, "L", "e", None, None)
    assert event.control is None
    boot = BootstrapEvent.from_change(
        SourceChange(ChangeOp.INSERT, Element("node", S1_42, [], 0, {}))
    )
    assert boot.control is None
    channel = EventChannel(SOURCE, None, "0.4")
    try:
        source_id = ffi.new("char[]", b"s")
        ev = ffi.cast("FfiSourceEvent *", lib.malloc(ffi.sizeof("FfiSourceEvent")))
        ffi.memmove(ev, bytes(ffi.sizeof("FfiSourceEvent")), ffi.sizeof("FfiSourceEvent"))
        ev.source_id.ptr = source_id
        ev.source_id.len = 1
        ev.timestamp_us = 1
        assert lib.dh_change_push_ptr()(channel.ctx, ev)
        (got,) = drained(channel)
        assert got.source_id == "s" and got.control is None and got.change is None
    finally:
        channel.release()


def test_bad_payloads_are_reported_in_place_and_dropped_once(
    source_channel: EventChannel013,
) -> None:
    drops = Drops()
    good = mp.encode_source_event(_delete_payload())
    # undecodable, trailing garbage, a wrong field type
    for data in (b"\xc1", good + b"\x00", good.replace(b"\xa2s1", b"\xa2s\xff", 1)):
        assert push_source(source_channel.key, data, drops) == (True, 1)
    push = _abi013.change_push_ptr()
    # length 0 with a buffer: nothing to decode, still dropped
    buf = c_bytes(b"xyz")
    assert push(source_channel.ctx, source_envelope(buf, 0, drops.fn))
    assert drops.calls.pop(addr(buf)) == 1
    # NULL payload: nothing to decode, nothing to drop
    assert push(source_channel.ctx, source_envelope(ffi13.NULL, 5, drops.fn))
    assert not drops.calls
    # oversize: refused unread (the buffer is 3 bytes), dropped with the given length
    buf = c_bytes(b"abc")
    huge = mp.MAX_FFI_PAYLOAD_BYTES + 1
    assert push(source_channel.ctx, source_envelope(buf, huge, drops.fn))
    assert drops.calls.pop(addr(buf)) == 1 and drops.lens[addr(buf)] == huge
    # a good one last: the stream goes on
    assert push_source(source_channel.key, good, drops) == (True, 1)
    items = drained(source_channel)
    assert [type(i) for i in items] == [PluginProtocolError] * 6 + [SourceEventWrapper]
    messages = [str(i) for i in items[:6]]
    assert "not valid MessagePack" in messages[0]
    assert "trailing" in messages[1] or "MessagePack" in messages[1]
    assert "undecodable" in messages[2]
    assert "empty or NULL payload" in messages[3] and "empty or NULL payload" in messages[4]
    assert f"{huge} bytes exceeds the maximum of {mp.MAX_FFI_PAYLOAD_BYTES}" in messages[5]


def test_the_channel_max_payload_is_enforced() -> None:
    channel = EventChannel013(SOURCE, "small", max_payload=64)
    drops = Drops()
    try:
        data = mp.encode_source_event(_delete_payload())
        assert len(data) > 64
        assert push_source(channel.key, data, drops) == (True, 1)
        (error,) = drained(channel)
        assert isinstance(error, PluginProtocolError) and "maximum of 64" in str(error)
    finally:
        channel.release()


def test_a_null_drop_fn_leaks_and_is_counted(source_channel: EventChannel013) -> None:
    before = _abi013.leaked_payloads()
    data = mp.encode_source_event(_delete_payload())
    buf = c_bytes(data)
    try:
        assert _abi013.change_push_ptr()(
            source_channel.ctx, source_envelope(buf, len(data), ffi13.NULL)
        )
        assert _abi013.leaked_payloads() == before + 1
        (event,) = drained(source_channel)
        assert event.change.op is ChangeOp.DELETE  # copied before the leak
    finally:
        lib13.free(buf)


def test_errors_surface_in_per_event_order_and_batches(source_channel: EventChannel013) -> None:
    drops = Drops()
    good = [
        mp.encode_source_event(
            mp.SourceEventPayload(
                source_id="s1",
                timestamp_us=i,
                change=mp.Change(
                    ChangeOp.INSERT,
                    mp.Element("node", mp.ElementReference("s1", str(i)), ("L",), 0, {"i": i}),
                ),
                control=None,
                sequence=i,
            )
        )
        for i in range(4)
    ]
    for data in (good[0], good[1], b"\x90", good[2], good[3]):
        assert push_source(source_channel.key, data, drops)[0]
    first = source_channel.take_batch(10)
    assert isinstance(first, EventBatch) and list(first.entity_ids) == ["0", "1"]
    assert [c.element.properties for c in first.changes()] == [{"i": 0}, {"i": 1}]
    assert list(first.ops) == [ChangeOp.INSERT] * 2
    error = source_channel.take_batch(10)
    assert isinstance(error, PluginProtocolError)
    rest = source_channel.take_batch(1)
    assert isinstance(rest, EventBatch) and list(rest.timestamps_us) == [2]
    tail: collections.deque[Any] = collections.deque()
    assert source_channel.drain(tail) == 0
    assert [e.entity_id for e in tail] == ["3"]
    assert source_channel.take_batch(10) is None


def test_end_of_stream_is_safe_late_and_twice(source_channel: EventChannel013) -> None:
    drops = Drops()
    assert push_source(source_channel.key, mp.encode_source_event(_delete_payload()), drops)[0]
    assert not _abi013.change_push_ptr()(source_channel.ctx, ffi13.NULL)
    assert len(drained(source_channel)) == 1 and source_channel.ended
    # a push after the end is refused and still dropped
    assert push_source(source_channel.key, b"\x01", drops) == (False, 1)
    key = source_channel.key
    source_channel.release()
    # the sentinel (and events) naming a released channel: refused, released
    assert not _abi013.change_push_ptr()(ffi13.cast("void *", key), ffi13.NULL)
    assert not _abi013.bootstrap_push_ptr()(ffi13.cast("void *", key), ffi13.NULL)
    assert push_source(key, b"\x01", drops) == (False, 1)
    # the key of a 0.13 channel is refused by the 0.4 callbacks and the reverse
    old = EventChannel(SOURCE, JsonCodec(), "0.4")
    try:
        assert push_source(old.key, b"\x01", drops) == (False, 1)
    finally:
        old.release()


def test_a_released_key_reused_by_a_new_channel_is_not_confused() -> None:
    first = EventChannel013(SOURCE, "first")
    key = first.key
    first.release()
    second = EventChannel013(SOURCE, "second")
    drops = Drops()
    try:
        assert second.key != key
        assert not _abi013.change_push_ptr()(ffi13.cast("void *", key), ffi13.NULL)
        assert not second.ended and second.stats()["pushed"] == 0
        assert push_source(key, b"\x01", drops) == (False, 1)
        assert second.stats()["pushed"] == 0
    finally:
        second.release()


# ---- C threads -------------------------------------------------------------------


def _docs(n: int, bootstrap: bool = False) -> list[bytes]:
    out = []
    for i in range(n):
        change = mp.Change(
            ChangeOp.UPDATE,
            mp.Element("node", mp.ElementReference("s1", f"e{i}"), ("L",), i, {"n": i}),
        )
        if bootstrap:
            out.append(
                mp.encode_bootstrap_event(mp.BootstrapEventPayload("s1", i, change, None, i))
            )
        else:
            out.append(
                mp.encode_source_event(mp.SourceEventPayload("s1", i, change, None, sequence=i))
            )
    return out


@pytest.mark.anyio
async def test_threads_push_concurrently_under_back_pressure(helper: Helper) -> None:
    channel = EventChannel013(SOURCE, "threads", capacity=16, max_bytes=4096)
    docs = _docs(5)
    producers = [
        Producer(helper, MODE_SOURCE, channel.key, docs, 600, null_drop_every=97,
                 oversize_every=89, oversize_len=mp.MAX_FFI_PAYLOAD_BYTES + 5,
                 null_payload_every=83)
        for _ in range(3)
    ]  # fmt: skip
    leaked_before = _abi013.leaked_payloads()
    try:
        for p in producers:
            p.start()
        events: list[Any] = []
        errors: list[Any] = []
        while len(events) + len(errors) < 1800:
            out: collections.deque[Any] = collections.deque()
            channel.drain(out)
            for item in out:
                (errors if isinstance(item, Exception) else events).append(item)
            if not out:
                with anyio.fail_after(TIMEOUT):
                    await channel.wait()
        for p in producers:
            p.join()
        expected_errors = sum(1 for i in range(600) if i % 89 == 0 or i % 83 == 0) * len(producers)
        assert len(errors) == expected_errors
        assert len(events) == 1800 - expected_errors
        assert {e.entity_id for e in events} <= {f"e{i}" for i in range(5)}
        for p in producers:
            assert p.p.accepted == 600 and p.p.refused == 0
            drops = p.drops()
            for i, n in enumerate(drops):
                if i % 83 == 0:
                    assert n == 0  # NULL payload: nothing to drop
                elif i % 97 == 0:
                    assert n == 0  # NULL drop fn: leaked
                else:
                    assert n == 1, i
        leaked = sum(1 for i in range(600) if i % 97 == 0 and i % 83 != 0) * len(producers)
        assert _abi013.leaked_payloads() - leaked_before == leaked
    finally:
        channel.release()
        for p in producers:
            p.join()
            p.free()


def test_a_release_under_blocked_producers_drops_everything_once(helper: Helper) -> None:
    channel = EventChannel013(BOOTSTRAP, "release", capacity=4)
    docs = _docs(3, bootstrap=True)
    producers = [
        Producer(helper, MODE_BOOTSTRAP, channel.key, docs, 200, send_eos=1) for _ in range(2)
    ]
    for p in producers:
        p.start()
    wait_for(lambda: channel.stats()["queued"] == 4, "a full channel")
    channel.release()  # producers blocked in the push are refused from here on
    try:
        for p in producers:
            p.join()
            assert p.p.accepted + p.p.refused == 200 and p.p.refused > 0
            assert p.drops() == [1] * 200
    finally:
        for p in producers:
            p.free()


@pytest.mark.anyio
async def test_bootstrap_stream_with_sentinel_from_a_thread(helper: Helper) -> None:
    channel = EventChannel013(BOOTSTRAP, "bootstrap", capacity=8)
    docs = _docs(4, bootstrap=True)
    producer = Producer(helper, MODE_BOOTSTRAP, channel.key, docs, 50, send_eos=1).start()
    try:
        got: list[Any] = []
        with anyio.fail_after(TIMEOUT):
            while True:
                out: collections.deque[Any] = collections.deque()
                channel.drain(out)
                got.extend(out)
                if channel.ended and not channel.has_pending:
                    break
                if not out:
                    await channel.wait()
        assert [e.sequence for e in got] == [i % 4 for i in range(50)]
        assert all(type(e) is BootstrapEvent for e in got)
        producer.join()
        assert producer.drops() == [1] * 50
    finally:
        channel.release()
        producer.join()
        producer.free()


# ---- the end-of-bootstrap result -------------------------------------------------


def _fire(
    helper: Helper,
    key: int,
    *,
    count: int = 0,
    position: bytes | None = None,
    error: bytes | None = None,
    with_result: bool = True,
    delay_ms: int = 0,
) -> None:
    h = helper.ffi
    pos = h.from_buffer(position) if position is not None else h.NULL
    err = h.from_buffer(error) if error is not None else h.NULL
    rc = helper.lib.result_fire(
        addr(_abi013.bootstrap_result_ptr()),
        key,
        int(with_result),
        count,
        pos,
        len(position or b""),
        err,
        len(error or b""),
        delay_ms,
    )
    assert rc == 0


@pytest.mark.anyio
async def test_the_bootstrap_result_is_kept_once(
    helper: Helper, bootstrap_channel: EventChannel013
) -> None:
    assert bootstrap_channel.outcome() is None
    before = helper.lib.result_drop_count()
    _fire(helper, bootstrap_channel.key, count=12, position=b"\x00\x01pos")
    assert helper.lib.result_drop_count() == before + 1
    _fire(helper, bootstrap_channel.key, count=99, error=b"second")  # ignored, still released
    assert helper.lib.result_drop_count() == before + 2
    with anyio.fail_after(TIMEOUT):
        outcome = await bootstrap_channel.wait_outcome(5)
    assert outcome == BootstrapOutcome(12, b"\x00\x01pos", None)
    assert outcome.check("bootstrap") == 12 and not outcome.failed


@pytest.mark.anyio
async def test_a_late_bootstrap_result_wakes_the_waiter(
    helper: Helper, bootstrap_channel: EventChannel013
) -> None:
    thread = threading.Thread(
        target=_fire, args=(helper, bootstrap_channel.key), kwargs={"count": 3, "delay_ms": 200}
    )
    thread.start()
    try:
        with anyio.fail_after(TIMEOUT):
            outcome = await bootstrap_channel.wait_outcome(10)
        assert outcome == BootstrapOutcome(3)
    finally:
        thread.join()


@pytest.mark.anyio
async def test_bootstrap_failure_and_no_result(helper: Helper) -> None:
    failed = EventChannel013(BOOTSTRAP, "failed")
    silent = EventChannel013(BOOTSTRAP, "silent")
    coded = EventChannel013(BOOTSTRAP, "coded")
    try:
        _fire(helper, failed.key, count=-1, error=b"disk \xff full")
        _fire(helper, silent.key, with_result=False)
        _fire(helper, coded.key, count=-7)
        outcome = await failed.wait_outcome(5)
        assert outcome is not None and outcome.failed
        with pytest.raises(PluginCallError, match="disk \ufffd full") as info:
            outcome.check("bootstrap of q1", plugin="libx.so")
        assert info.value.code == -1 and info.value.plugin == "libx.so"
        assert await silent.wait_outcome(5) == BootstrapOutcome(None)
        assert BootstrapOutcome(None).check("x") is None
        coded_outcome = await coded.wait_outcome(5)
        assert coded_outcome is not None
        with pytest.raises(PluginCallError, match="failed with code -7"):
            coded_outcome.check("bootstrap")
    finally:
        for c in (failed, silent, coded):
            c.release()


@pytest.mark.anyio
async def test_no_bootstrap_result_times_out(bootstrap_channel: EventChannel013) -> None:
    assert await bootstrap_channel.wait_outcome(0.05) is None


def test_a_bootstrap_result_after_the_release_is_released(helper: Helper) -> None:
    channel = EventChannel013(BOOTSTRAP, "gone")
    key = channel.key
    channel.release()
    before = helper.lib.result_drop_count()
    _fire(helper, key, count=1, position=b"p", error=b"e")
    assert helper.lib.result_drop_count() == before + 2
    assert channel.outcome() is None
    # the wrong kind of channel ignores it too
    source = EventChannel013(SOURCE, "source")
    try:
        _fire(helper, source.key, count=1, position=b"p")
        assert lib.dh_bootstrap_outcome(source.key, ffi.new("DhBootstrapOutcome *")) == 0
    finally:
        source.release()


# ---- reaction results ------------------------------------------------------------


EXAMPLE_D_MODEL = QueryResult(
    "q1",
    datetime(2026, 11, 28, 7, 30, 0, 123456, tzinfo=timezone.utc),
    [
        ResultDiff.add({"name": "Ada"}),
        ResultDiff.update({"n": 2}, {"n": 1}, {"n": 2}),
        ResultDiff.aggregation(None, {"c": 1}),
        ResultDiff.noop(),
    ],
    {},
)


def test_example_d_bytes_from_the_model() -> None:
    assert len(EXAMPLE_D) == 240
    # the model has no sequence or row signatures: they are 0 on the wire
    expected = (
        EXAMPLE_D.replace(b"\xa8sequence\x03", b"\xa8sequence\x00")
        .replace(b"_signature\x2a", b"_signature\x00")
        .replace(b"_signature\x07", b"_signature\x00")
    )
    data = RESULT_CODEC_013.encode_query_result(EXAMPLE_D_MODEL)
    assert data == expected
    assert RESULT_CODEC_013.decode_query_result(EXAMPLE_D) == EXAMPLE_D_MODEL
    assert mp.encode_query_result(mp.decode_query_result(EXAMPLE_D)) == EXAMPLE_D


class Puller:
    def __init__(self, helper: Helper, key: int, **options: int) -> None:
        self.helper = helper
        self.p = helper.lib.puller013_new(addr(_abi013.result_push_ptr()), key, 1 << 20)
        for name, value in options.items():
            setattr(self.p, name, value)

    def start(self) -> Puller:
        assert self.helper.lib.puller013_start(self.p) == 0
        return self

    @property
    def done(self) -> bool:
        return bool(self.helper.lib.puller013_done(self.p))

    def results(self) -> list[bytes]:
        data = self.helper.ffi.buffer(self.p.out, self.p.out_len)[:]
        out, off = [], 0
        while off < len(data):
            n = int.from_bytes(data[off : off + 4], sys.byteorder)
            out.append(data[off + 4 : off + 4 + n])
            off += 4 + n
        return out

    def free(self) -> None:
        self.helper.lib.puller013_free(self.p)


def _results(n: int) -> list[QueryResult]:
    ts = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [QueryResult(f"q{i}", ts, [ResultDiff.add({"i": i})]) for i in range(n)]


@pytest.mark.anyio
async def test_results_flow_to_a_0_13_forwarder_and_it_exits(helper: Helper) -> None:
    channel = ResultChannel013()
    key = channel.open(8)
    puller = Puller(helper, key).start()
    try:
        results = _results(40)
        documents = [RESULT_CODEC_013.encode_query_result(r) for r in results]
        pushed = 0
        with anyio.fail_after(TIMEOUT):
            while pushed < len(documents):
                taken = channel.push_many(documents[pushed:])
                assert taken >= 0
                pushed += taken
                if pushed < len(documents):
                    await anyio.sleep(0.001)
            while len(puller.results()) < len(documents):
                await anyio.sleep(0.001)
        got = puller.results()
        assert got == documents
        assert [RESULT_CODEC_013.decode_query_result(d) for d in got] == results
        assert not channel.has_exited(key)
        channel.close()  # the pull returns NULL, the forwarder exits
        with anyio.fail_after(TIMEOUT):
            assert await channel.wait_exited(key, 10)
        assert channel.has_exited(key)
        wait_for(lambda: puller.done, "the forwarder")
        assert puller.p.sentinel_answer == 0  # NULL at once
    finally:
        channel.release(key)
        channel.shutdown()
        puller.free()


def test_the_sentinel_is_recorded_without_a_pull() -> None:
    channel = ResultChannel013()
    key = channel.open(4)
    try:
        cb = _abi013.result_push_ptr()
        assert not channel.wait_exited_blocking(key, 0.05)
        # a sentinel pointer is never dereferenced: any non-NULL value
        assert cb(ffi13.cast("void *", key), ffi13.cast("void *", 0xDEAD)) == ffi13.NULL
        assert channel.has_exited(key)
        assert channel.wait_exited_blocking(key, 5)
    finally:
        channel.shutdown()
    # late, after the release: ignored, returns NULL
    assert cb(ffi13.cast("void *", key), ffi13.cast("void *", 1)) == ffi13.NULL
    assert not channel.has_exited(key)
    assert not channel.wait_exited_blocking(key, 0.01)


def test_a_release_wakes_a_sentinel_waiter() -> None:
    channel = ResultChannel013()
    key = channel.open(4)
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(channel.wait_exited_blocking(key, 10)))
    waiter.start()
    time.sleep(0.05)
    started = time.monotonic()
    channel.shutdown()
    waiter.join(TIMEOUT)
    assert answers == [False] and time.monotonic() - started < 5


def test_queued_0_13_results_are_freed_with_the_channel() -> None:
    channel = ResultChannel013()
    key = channel.open(4)
    data = RESULT_CODEC_013.encode_query_result(_results(1)[0])
    assert channel.push(data) == lib.DH_OK
    assert channel.push_many([data, data]) == 2
    cb = _abi013.result_push_ptr()
    item = ffi13.cast("FfiQueryResult *", cb(ffi13.cast("void *", key), ffi13.NULL))
    assert ffi13.buffer(item.payload_ptr, item.payload_len)[:] == data
    assert item.payload_drop_fn != ffi13.NULL
    item.payload_drop_fn(ffi13.cast("uint8_t *", item.payload_ptr), item.payload_len)
    lib13.free(item)
    channel.shutdown()  # two envelopes still queued: freed here (valgrind checks)


def test_generations_do_not_mix_on_results() -> None:
    old = lib.dh_chan_new(lib.DH_KIND_RESULTS, 0, 4, 1, 0, -1)
    new = ResultChannel013()
    key = new.open(4)
    try:
        data = b"doc"
        assert lib.dh_results_push(old, data, 3) == lib.DH_OK
        assert new.push(data) == lib.DH_OK
        # the 0.13 callback refuses a 0.4 channel and the 0.4 one a 0.13 channel
        cb13 = _abi013.result_push_ptr()
        assert cb13(ffi13.cast("void *", old), ffi13.NULL) == ffi13.NULL
        assert lib.dh_result_pull(ffi.cast("void *", key), ffi.NULL) == ffi.NULL
        # a sentinel on a 0.4 channel records nothing
        cb13(ffi13.cast("void *", old), ffi13.cast("void *", 1))
        assert lib.dh_results_exited(old) == 0
    finally:
        lib.dh_chan_release(old)
        new.shutdown()


def test_standalone_decoders() -> None:
    data = mp.encode_source_event(_delete_payload())
    assert source_event_from_payload(data).change.element.type is None
    with pytest.raises(mp.PayloadFieldError):
        bootstrap_event_from_payload(data)
