"""Channels between plugin threads and the event loop.

* :class:`Notifier` wakes the event loop from any thread (C code writes one
  byte to a socket; a coroutine waits for it with :func:`anyio.wait_readable`,
  the same under asyncio and trio).  Closing it under a waiting task wakes
  that task with :class:`~drasi_host.errors.ClosedError`; the sockets are
  closed only once no task waits on them.
* :class:`ThreadSafeQueue` puts a bounded deque behind a notifier, for
  streams fed from plugin threads (log and lifecycle subscriptions).
* :class:`EventChannel` is a native event channel (``channels.c``).  The
  plugin's push callback copies each event into the channel and releases it
  on the plugin's own thread; the event loop takes everything queued in one
  O(1) call and gets records plus one byte arena, copied once into Python
  ``bytes``.  Events are built from that batch (:meth:`EventChannel.drain`,
  payload sliced lazily), or read as columns (:class:`EventBatch`) without
  building per-event objects.  Records that break the ABI arrive in order
  as :class:`~drasi_host.errors.PluginProtocolError` objects.
* :class:`ResultChannel` is the native results channel of a reaction's
  start: Python pushes encoded results without blocking, the plugin's thread
  pulls them.  A sleeping puller is woken when enough results are queued, or
  at the end of the producer's event-loop tick, never once per result.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import operator
import socket
import struct
import sys
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import anyio

from ._abi import ffi, lib
from .errors import ClosedError, DrasiHostError, PluginProtocolError
from .events import BootstrapEvent, SourceEventWrapper
from .models import ChangeOp, SourceChange
from .payloads import MAX_PAYLOAD_SIZE, PayloadCodec

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_BYTES",
    "ChannelLimitError",
    "EventBatch",
    "EventChannel",
    "Notifier",
    "ResultChannel",
    "ThreadSafeQueue",
]

T = TypeVar("T")

#: Events a channel holds before the plugin's push blocks.
DEFAULT_CAPACITY = 4096
#: Bytes (routing hints + payloads) a channel holds before the push blocks
#: (a single larger event still passes on its own).
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

_RECORD = struct.Struct("<qQiIIIIIIIQ")
assert _RECORD.size == ffi.sizeof("DhEventRecord")
_RECORD_SIZE = _RECORD.size
# Columns of a record viewed as int64 (7 per record) and uint32 (14 per record).
_I64, _U32 = _RECORD_SIZE // 8, _RECORD_SIZE // 4
_TS, _SEQ, _PAYLOAD_LEN = 0, 1, 6  # int64 columns
_OP, _FLAGS, _HINT_OFFSET, _PAYLOAD_OFFSET = 4, 5, 9, 10  # uint32 columns
_OPS = tuple(ChangeOp)
_INSERT = ChangeOp.INSERT
_HAS_PAYLOAD = lib.DH_REC_HAS_PAYLOAD
_ERRORS = lib.DH_REC_ERRORS
_new = object.__new__
_results_push = lib.dh_results_push
_OK: int = lib.DH_OK
_WAKE_OWED: int = lib.DH_WAKE_OWED


class ChannelLimitError(DrasiHostError):
    """No native channel could be created (too many open, or out of memory)."""


# ---- waking the event loop ------------------------------------------------------


class Notifier:
    """One wake-up channel: ``notify()`` from anywhere, ``await wait()`` on the loop."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._lock = threading.Lock()
        self._closing = False
        self._waiters = 0
        self._sockets_closed = False

    @property
    def write_fd(self) -> int:
        """The descriptor C code writes to (open until :meth:`close`)."""
        return self._writer.fileno()

    @property
    def closed(self) -> bool:
        return self._closing

    def notify(self) -> None:
        with self._lock:
            if self._sockets_closed:
                return
            # BlockingIOError: unread bytes already pending, a wake-up is due anyway.
            with contextlib.suppress(OSError):
                self._writer.send(b"\x01")

    def clear(self) -> None:
        """Discard pending wake-up bytes."""
        with self._lock:
            if self._sockets_closed:
                return
            with contextlib.suppress(OSError):
                while self._reader.recv(4096):
                    pass

    async def wait(self) -> None:
        """Wait until notified (returns at once if a wake-up is pending).

        Raises :class:`ClosedError` when the notifier is closed before or
        while waiting.
        """
        with self._lock:
            if self._closing:
                raise ClosedError("the channel is closed")
            self._waiters += 1
        try:
            await anyio.wait_readable(self._reader)
        except (anyio.ClosedResourceError, OSError, ValueError) as exc:
            raise ClosedError("the channel is closed") from exc
        finally:
            with self._lock:
                self._waiters -= 1
                last = self._closing and self._waiters == 0
            if last:
                self._close_sockets()
        if self._closing:
            raise ClosedError("the channel is closed")
        self.clear()

    def close(self) -> None:
        """Close (from any thread).  A task waiting right now is woken and
        raises :class:`ClosedError`; the sockets are closed once it has left."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            waiting = self._waiters > 0
        if waiting:
            self.notify()
        else:
            self._close_sockets()

    def _close_sockets(self) -> None:
        with self._lock:
            if self._sockets_closed:
                return
            self._sockets_closed = True
            self._reader.close()
            self._writer.close()


def _new_notifier(label: str) -> Notifier:
    """A notifier for a channel; running out of descriptors is running out
    of channels."""
    try:
        return Notifier()
    except OSError as exc:
        raise ChannelLimitError(f"{label}: cannot create a channel notifier ({exc})") from exc


class ThreadSafeQueue(Generic[T]):
    """A bounded queue filled from any thread and read by one coroutine.

    ``put`` never blocks: when full the oldest item is dropped and counted in
    ``dropped``.  ``close()`` ends the stream after what is queued.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self._notifier = Notifier()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._items) >= self._maxlen:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
        self._notifier.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._notifier.notify()

    async def get(self) -> T:
        """The next item; raises :class:`anyio.EndOfStream` once closed and empty."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    self._notifier.close()
                    raise anyio.EndOfStream
            try:
                await self._notifier.wait()
            except ClosedError:
                raise anyio.EndOfStream from None

    def __aiter__(self) -> ThreadSafeQueue[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None


# ---- events -----------------------------------------------------------------------


class _Raw:
    """One batch taken from a channel (records, hint arena and payload
    arena, copied into ``bytes``) and how far it has been consumed."""

    __slots__ = ("_parts", "errors", "hints", "n", "payloads", "pos", "records")

    def __init__(
        self,
        records: bytes,
        hints: bytes,
        payloads: bytes,
        n: int,
        flagged: int,
    ) -> None:
        self.records = records
        self.hints = hints
        self.payloads = payloads
        self.n = n
        self.pos = 0
        self._parts: list[str] | None = None
        self.errors: collections.deque[int] = collections.deque()
        if flagged:
            flags = memoryview(records).cast("I")[_FLAGS::_U32].tolist()
            self.errors.extend(i for i, f in enumerate(flags) if f & _ERRORS)

    def next_stop(self, limit: int) -> int:
        """End of the run of good records from ``pos`` (at most ``limit``)."""
        stop = min(self.n, self.pos + limit)
        errors = self.errors
        if errors and errors[0] < stop:
            stop = errors[0]
        return stop

    def views(self, start: int, stop: int) -> tuple[memoryview, memoryview]:
        """Records ``start:stop`` as int64 and uint32 columns."""
        view = memoryview(self.records)[start * _RECORD_SIZE : stop * _RECORD_SIZE]
        return view.cast("q"), view.cast("I")

    def hint_strings(self, start: int, stop: int) -> list[str]:
        """Source id, label and entity id of records ``start:stop``, flat."""
        parts = self._parts
        if parts is None:
            # Every hint ends with a NUL byte: unless a hint holds one too,
            # one decode and one split give all of them (decoding whole or
            # per hint is the same, NUL being ASCII).
            hints = self.hints
            if hints.count(0) == 3 * self.n:
                parts = self._parts = hints.decode("utf-8", "replace").split("\0")
            else:
                parts = self._parts = []  # NULs inside hints: per record
        if parts:
            return parts[3 * start : 3 * stop]
        out: list[str] = []
        hints = self.hints
        for _, _, _, _, sl, ll, el, off, _, _, _ in _RECORD.iter_unpack(
            self.records[start * _RECORD_SIZE : stop * _RECORD_SIZE]
        ):
            a = off + sl + 1
            b = a + ll + 1
            out.append(hints[off : off + sl].decode("utf-8", "replace"))
            out.append(hints[a : a + ll].decode("utf-8", "replace"))
            out.append(hints[b : b + el].decode("utf-8", "replace"))
        return out


class EventChannel:
    """A native event channel and its wake-up socket.

    ``kind`` is ``lib.DH_KIND_SOURCE_EVENTS`` or ``lib.DH_KIND_BOOTSTRAP_EVENTS``;
    ``codec`` is the plugin's payload codec (None for opaque payloads);
    ``capacity`` and ``max_bytes`` bound what is queued.  Raises
    :class:`ChannelLimitError` when no channel can be created.
    """

    def __init__(
        self,
        kind: int,
        codec: PayloadCodec | None,
        label: str,
        capacity: int = DEFAULT_CAPACITY,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if capacity < 1 or max_bytes < 1:
            raise ValueError("an event channel needs capacity >= 1 and max_bytes >= 1")
        self.kind = kind
        self.codec = codec
        self.label = label
        self.bootstrap = kind == lib.DH_KIND_BOOTSTRAP_EVENTS
        self.notifier = _new_notifier(label)
        flags, max_payload = self._chan_params()
        self.key = int(
            lib.dh_chan_new(kind, flags, capacity, max_bytes, max_payload, self.notifier.write_fd)
        )
        if self.key == lib.DH_NO_CHANNEL:
            self.notifier.close()
            raise ChannelLimitError(f"{label}: cannot create an event channel (too many open)")
        self._batch = ffi.new("DhEventBatch *")
        self._raw: _Raw | None = None
        #: Events in the last non-empty batch taken (0 after waiting for one).
        self.last_batch = 0
        self.ended = False
        self.released = False

    def _chan_params(self) -> tuple[int, int]:
        """The native channel's flags and payload maximum."""
        return (lib.DH_CHAN_DRASI_PAYLOAD if self.codec is not None else 0), MAX_PAYLOAD_SIZE

    @property
    def ctx(self) -> Any:
        """The callback context handed to the plugin (the channel's key)."""
        return ffi.cast("void *", self.key)

    # ---- taking ------------------------------------------------------------------

    def _take(self) -> _Raw | None:
        """The unconsumed batch, taking a new one from C when there is none."""
        raw = self._raw
        if raw is not None and raw.pos < raw.n:
            return raw
        self._raw = None
        if self.released:
            self.ended = True
            return None
        out = self._batch
        n = lib.dh_events_take(self.key, out)
        if out.ended:
            self.ended = True
        if n <= 0:
            return None
        self.last_batch = int(n)
        raw = self._raw = _Raw(
            ffi.buffer(out.records, n * _RECORD_SIZE)[:],
            ffi.buffer(out.hints, out.nhints)[:],
            ffi.buffer(out.payloads, out.npayloads)[:] if out.npayloads else b"",
            int(n),
            int(out.flagged),
        )
        return raw

    @property
    def has_pending(self) -> bool:
        raw = self._raw
        return raw is not None and raw.pos < raw.n

    def drain(self, out: collections.deque[Any], limit: int = sys.maxsize) -> int:
        """Move queued events into ``out`` as event objects (at most
        ``limit`` records; the rest stay pending), records that break the
        ABI as :class:`PluginProtocolError` objects in their place.  Returns
        how many error objects were appended."""
        raw = self._take()
        if raw is None:
            return 0
        errors = 0
        end = min(raw.n, raw.pos + limit)
        while raw.pos < end:
            stop = raw.next_stop(end - raw.pos)
            if stop > raw.pos:
                out.extend(self._build(raw, raw.pos, stop))
                raw.pos = stop
            else:
                raw.errors.popleft()
                out.append(self._error(raw, raw.pos))
                raw.pos += 1
                errors += 1
        return errors

    def take_batch(self, max_events: int) -> EventBatch | PluginProtocolError | None:
        """The next run of events as an :class:`EventBatch` (at most
        ``max_events``), the error a flagged record reports, or None when
        nothing is queued."""
        raw = self._take()
        if raw is None:
            return None
        start = raw.pos
        stop = raw.next_stop(max_events)
        if stop == start:
            raw.errors.popleft()
            raw.pos += 1
            return self._error(raw, start)
        raw.pos = stop
        return EventBatch(self, raw, start, stop)

    def _build(self, raw: _Raw, start: int, stop: int) -> list[Any]:
        """Event objects for the good records ``start:stop`` of ``raw``."""
        i64, u32 = raw.views(start, stop)
        timestamps = i64[_TS::_I64].tolist()
        hints = iter(raw.hint_strings(start, stop))
        codec = self.codec
        events: list[Any] = []
        append = events.append
        if self.bootstrap:
            ops: list[Any] = i64.cast("B").cast("Q")[_SEQ::_I64].tolist()  # sequences for now
            cls: type[SourceEventWrapper] = BootstrapEvent
        else:
            ops = list(map(_OPS.__getitem__, u32[_OP::_U32].tolist()))
            cls = SourceEventWrapper
        if codec is not None:  # every good record of a DrasiPayload plugin has a payload
            payloads = raw.payloads
            starts = u32[_PAYLOAD_OFFSET::_U32].tolist()
            ends = list(map(operator.add, starts, i64[_PAYLOAD_LEN::_I64].tolist()))
            for ts, op, source_id, label, entity_id, a, b in zip(
                timestamps, ops, hints, hints, hints, starts, ends, strict=True
            ):
                ev = _new(cls)
                ev.source_id = source_id
                ev.label = label
                ev.entity_id = entity_id
                ev.timestamp_us = ts
                ev.op = op
                ev._payload = payloads
                ev._start = a
                ev._end = b
                ev._codec = codec
                ev._decoded = False
                append(ev)
        else:
            for ts, op, source_id, label, entity_id in zip(
                timestamps, ops, hints, hints, hints, strict=True
            ):
                ev = _new(cls)
                ev.source_id = source_id
                ev.label = label
                ev.entity_id = entity_id
                ev.timestamp_us = ts
                ev.op = op
                ev._payload = None
                ev._codec = None
                ev._decoded = False
                append(ev)
        if self.bootstrap:
            for ev in events:  # the sequence was put in the op's place above
                ev.sequence = ev.op
                ev.op = _INSERT
        return events

    def _error(self, raw: _Raw, index: int) -> PluginProtocolError:
        _, _, op, flags, *_, pl = _RECORD.unpack_from(raw.records, index * _RECORD_SIZE)
        source_id, _, entity_id = raw.hint_strings(index, index + 1)
        where = f"{self.label}: event {entity_id!r} from {source_id!r}"
        if flags & lib.DH_REC_OVERSIZE:
            message = (
                f"{where}: payload of {pl} bytes exceeds the maximum of {MAX_PAYLOAD_SIZE}; dropped"
            )
        elif flags & lib.DH_REC_NULL_PAYLOAD:
            message = f"{where}: NULL payload from a plugin that declares a payload format"
        elif flags & lib.DH_REC_BAD_HINT:
            message = f"{where}: a routing hint is NULL or longer than {lib.DH_MAX_HINT_LEN} bytes"
        elif flags & lib.DH_REC_NO_MEMORY:
            message = f"{where}: the host ran out of memory copying the event; dropped"
        else:
            message = f"{where}: {op} is not a valid FfiChangeOp (0, 1, 2)"
        return PluginProtocolError(message)

    # ---- waiting and closing -----------------------------------------------------

    async def wait(self) -> None:
        """Wait until there may be something to take (ClosedError once the
        notifier is closed)."""
        if lib.dh_chan_arm_consumer(self.key) == lib.DH_ARMED:
            self.last_batch = 0
            await self.notifier.wait()

    def close(self) -> None:
        """Refuse further pushes (blocked plugin callbacks return false) and
        wake the consumer; what is queued can still be taken."""
        if not self.released:
            lib.dh_chan_close(self.key)

    def mark_ended(self) -> None:
        """Treat the stream as ended once the queue is empty."""
        self.close()

    def release(self) -> None:
        """Free what is queued and forget the key (C never writes to the
        notifier again), then close the notifier; idempotent."""
        if not self.released:
            self.released = True
            lib.dh_chan_release(self.key)
            self.notifier.close()

    def stats(self) -> dict[str, int]:
        """Queue figures of the native channel (zeros once released)."""
        out = ffi.new("DhChanStats *")
        if self.released or lib.dh_chan_stats(self.key, out) != lib.DH_OK:
            return dict.fromkeys(
                ("queued", "capacity", "queued_bytes", "max_bytes", "pushed", "rejected"), 0
            )
        return {
            "queued": int(out.queued),
            "capacity": int(out.capacity),
            "queued_bytes": int(out.queued_bytes),
            "max_bytes": int(out.max_bytes),
            "pushed": int(out.pushed),
            "rejected": int(out.rejected),
        }


class EventBatch:
    """A run of events taken from a receiver at once (never empty).

    The columns (``ops``, ``labels``, ``entity_ids``, ``source_ids``,
    ``timestamps_us``, ``payloads``, and ``sequences`` for bootstrap events)
    are read straight from the batch without building per-event objects;
    iterating builds (once) the same event objects per-event iteration
    yields.  ``changes()`` decodes every payload now.
    """

    __slots__ = ("_channel", "_events", "_raw", "_start", "_stop")

    def __init__(
        self,
        channel: EventChannel,
        raw: _Raw | None,
        start: int = 0,
        stop: int = 0,
        events: list[Any] | None = None,
    ) -> None:
        self._channel = channel
        self._raw = raw
        self._start = start
        self._stop = stop
        self._events = events

    @classmethod
    def of_events(cls, channel: EventChannel, events: list[Any]) -> EventBatch:
        """A batch of events already built."""
        return cls(channel, None, events=events)

    def __len__(self) -> int:
        if self._raw is None:
            return len(self._events or ())
        return self._stop - self._start

    def __iter__(self) -> Iterator[Any]:
        return iter(self.events)

    @property
    def events(self) -> list[Any]:
        """The event objects (built on first use)."""
        events = self._events
        if events is None:
            assert self._raw is not None
            events = self._events = self._channel._build(self._raw, self._start, self._stop)
        return events

    # ---- columns -----------------------------------------------------------------

    def _views(self) -> tuple[memoryview, memoryview]:
        assert self._raw is not None
        return self._raw.views(self._start, self._stop)

    def _field(self, name: str) -> list[Any]:
        return [getattr(event, name) for event in self.events]

    def _hints(self, which: int) -> list[str]:
        """One routing hint of every event: 0 source id, 1 label, 2 entity id."""
        if self._raw is None:
            return self._field(("source_id", "label", "entity_id")[which])
        return self._raw.hint_strings(self._start, self._stop)[which::3]

    @property
    def source_ids(self) -> Sequence[str]:
        return self._hints(0)

    @property
    def labels(self) -> Sequence[str]:
        return self._hints(1)

    @property
    def entity_ids(self) -> Sequence[str]:
        return self._hints(2)

    @property
    def timestamps_us(self) -> Sequence[int]:
        if self._raw is None:
            return self._field("timestamp_us")
        i64, _ = self._views()
        return i64[_TS::_I64].tolist()

    @property
    def ops(self) -> Sequence[ChangeOp]:
        if self._raw is None:
            return self._field("op")
        if self._channel.bootstrap:
            return [_INSERT] * len(self)
        _, u32 = self._views()
        return list(map(_OPS.__getitem__, u32[_OP::_U32].tolist()))

    @property
    def sequences(self) -> Sequence[int]:
        """Sequence numbers of bootstrap events (zeros for change events)."""
        if self._raw is None:
            return [getattr(event, "sequence", 0) for event in self.events]
        if not self._channel.bootstrap:
            return [0] * len(self)
        i64, _ = self._views()
        return i64.cast("B").cast("Q")[_SEQ::_I64].tolist()

    @property
    def payloads(self) -> Sequence[bytes | None]:
        if self._raw is None:
            return self._field("payload")
        if self._channel.codec is None:
            return [None] * len(self)
        i64, u32 = self._views()
        payloads = self._raw.payloads
        return [
            payloads[a : a + n]
            for a, n in zip(
                u32[_PAYLOAD_OFFSET::_U32].tolist(), i64[_PAYLOAD_LEN::_I64].tolist(), strict=True
            )
        ]

    def changes(self) -> list[SourceChange | None]:
        """Every event's change, decoded now (None for opaque payloads)."""
        if self._events is not None:  # built already (0.13 events always are)
            return [event.change for event in self._events]
        if self._channel.codec is None:
            return [None] * len(self)
        return [event.change for event in self.events]

    def __repr__(self) -> str:
        return f"<EventBatch of {len(self)} events>"


# ---- results ----------------------------------------------------------------------


def _call_soon(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the current event loop once the running task yields."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio (already imported, it is running)
        sys.modules["trio"].lowlevel.current_trio_token().run_sync_soon(fn)
    else:
        loop.call_soon(fn)


class ResultChannel:
    """The results channel of a reaction's current start and the notifier
    that wakes a producer waiting for space.

    Holds no reference to the reaction, so the reaction's release can shut
    it down before the plugin's ``drop_fn`` runs.
    """

    #: Flags of the native channels opened (``DH_CHAN_*``).
    _flags = 0

    def __init__(self) -> None:
        self.notifier = _new_notifier("a results channel")
        self.key = 0
        self._lock = threading.Lock()
        self._shut = False
        self._wake_due = False

    def open(self, capacity: int) -> int:
        """A fresh channel for a start (a previous one is released)."""
        with self._lock:
            if self._shut:
                raise ClosedError("the reaction is closed")
            old, self.key = self.key, 0
        if old:
            lib.dh_chan_release(old)
        key = int(
            lib.dh_chan_new(
                lib.DH_KIND_RESULTS, self._flags, capacity, 1, 0, self.notifier.write_fd
            )
        )
        if key == lib.DH_NO_CHANNEL:
            raise ChannelLimitError("no results channel could be created (too many open)")
        with self._lock:
            self.key = key
        return key

    def close(self) -> int:
        """Close the current channel (pending pulls return NULL); its key."""
        key = self.key
        if key:
            lib.dh_chan_close(key)
        return key

    def release(self, key: int) -> None:
        """Release a closed channel: queued results are freed, the key is dead."""
        if key:
            lib.dh_chan_release(key)
        with self._lock:
            if self.key == key:
                self.key = 0

    def shutdown(self) -> None:
        """Release the channel and the notifier (once, before ``drop_fn``)."""
        with self._lock:
            if self._shut:
                return
            self._shut = True
            key, self.key = self.key, 0
        if key:
            lib.dh_chan_release(key)
        self.notifier.close()

    # ---- pushing -----------------------------------------------------------------

    def push(self, data: bytes) -> int:
        """Queue one document without blocking: ``DH_OK``, ``DH_FULL`` (the
        notifier fires once there is room), ``DH_CLOSED_OR_UNKNOWN`` or
        ``DH_NO_MEMORY``."""
        rc: int = _results_push(self.key, data, len(data))
        if rc == _WAKE_OWED:
            self._owe_wake()
            return _OK
        return rc

    def push_many(self, documents: Sequence[bytes]) -> int:
        """Queue documents in order under one lock with one wake-up; returns
        how many were taken (fewer when the channel filled up), or a negative
        ``DH_*`` code when none could be."""
        if not documents:
            return 0
        data = b"".join(documents)
        lens = array("Q", map(len, documents))
        return int(
            lib.dh_results_push_many(
                self.key, data, ffi.from_buffer("uint64_t[]", lens), len(documents)
            )
        )

    def _owe_wake(self) -> None:
        if not self._wake_due:
            self._wake_due = True
            _call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_due = False
        key = self.key
        if key:
            lib.dh_results_wake(key)

    def stats(self) -> Any:
        """The current channel's ``DhChanStats``, or None without one."""
        out = ffi.new("DhChanStats *")
        key = self.key
        if not key or lib.dh_chan_stats(key, out) != lib.DH_OK:
            return None
        return out
