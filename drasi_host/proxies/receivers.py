"""Push delivery from plugin threads into ``async for``.

The plugin's thread calls a C function of ``_ffi`` for every event
(``dh_change_push`` / ``dh_bootstrap_push``).  That function never touches
Python: it puts the envelope into a bounded channel, blocking the plugin
thread while the channel is full (back-pressure without the GIL), and writes
a byte to a socket when the consumer is waiting.  On the event loop,
:class:`EventChannel` drains a batch at a time with ``dh_events_drain``, which
copies routing hints and payload bytes into one arena and releases each event
(``drop_fn(opaque)``, ``free(envelope)``) exactly once; Python then builds a
:class:`SourceEventWrapper` / :class:`BootstrapEvent` per record, decoding
the payload only when ``.change`` is first read.

Closing a receiver closes its channel first (a blocked plugin callback returns
``false``), then runs the receiver's ``drop_fn`` in a worker thread, then
releases whatever is still queued.  Calls that arrive afterwards name a stale
channel key and are refused and released in C.
"""

from __future__ import annotations

import collections
import struct
import weakref
from typing import Any, ClassVar, Generic, TypeVar

import anyio
import anyio.lowlevel

from .. import _abi
from .._abi import NULL, decode_utf8, ffi, lib
from .._notify import Notifier
from ..errors import DrasiHostError, PluginProtocolError
from ..models import BootstrapEvent, ChangeOp, SourceEventWrapper
from ..payloads import MAX_PAYLOAD_SIZE, PayloadCodec

__all__ = ["BootstrapReceiverProxy", "ChangeReceiverProxy", "EventChannel"]

#: Events the channel holds before the plugin's push blocks.
DEFAULT_CAPACITY = 4096
#: Records drained per batch, and the arena size that ends a batch early.
BATCH = 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024

_RECORD = struct.Struct("<qQiIIIIIQ")
assert _RECORD.size == ffi.sizeof("DhEventRecord")
_OPS = tuple(ChangeOp)
_BAD = lib.DH_REC_OVERSIZE | lib.DH_REC_NULL_PAYLOAD | lib.DH_REC_BAD_HINT

E = TypeVar("E", bound=SourceEventWrapper)


class EventChannel:
    """A C event channel and its wake-up socket, drained into Python events."""

    def __init__(
        self,
        kind: int,
        codec: PayloadCodec | None,
        label: str,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.kind = kind
        self.codec = codec
        self.label = label
        self.notifier = Notifier()
        self.key = lib.dh_chan_new(kind, capacity, self.notifier.write_fd)
        if self.key == 0:
            self.notifier.close()
            raise DrasiHostError(f"{label}: cannot create an event channel (too many open)")
        self._records = ffi.new("DhEventRecord[]", BATCH)
        self._arena = ffi.new("uint8_t **")
        self._arena_len = ffi.new("size_t *")
        self._ended = ffi.new("int *")
        self._drasi = 1 if codec is not None else 0
        self.ended = False
        self.released = False
        self._labels: dict[bytes, str] = {}
        self._source_bytes = b""
        self._source_str = ""

    @property
    def ctx(self) -> Any:
        return ffi.cast("void *", self.key)

    def drain(self, out: collections.deque[Any]) -> int:
        """Move queued events into ``out`` (errors as exception objects)."""
        if self.released:
            self.ended = True
            return 0
        n = lib.dh_events_drain(
            self.key,
            self._records,
            BATCH,
            self._arena,
            self._arena_len,
            self._drasi,
            MAX_PAYLOAD_SIZE,
            MAX_BATCH_BYTES,
            self._ended,
        )
        if self._ended[0]:
            self.ended = True
        if n <= 0:
            return 0
        length = self._arena_len[0]
        arena = ffi.buffer(self._arena[0], length)[:] if length else b""
        if self._arena[0] != NULL:
            lib.free(self._arena[0])
        self._build(ffi.buffer(self._records, n * _RECORD.size)[:], arena, out)
        return int(n)

    def _build(self, records: bytes, arena: bytes, out: collections.deque[Any]) -> None:
        codec = self.codec
        labels = self._labels
        bootstrap = self.kind == lib.DH_KIND_BOOTSTRAP_EVENTS
        append = out.append
        off = 0
        for ts, seq, op, flags, sl, ll, el, _r, pl in _RECORD.iter_unpack(records):
            end = off + sl
            raw_source = arena[off:end]
            if raw_source == self._source_bytes:
                source_id = self._source_str
            else:
                source_id = decode_utf8(raw_source, f"{self.label}: event source_id", strict=False)
                self._source_bytes, self._source_str = raw_source, source_id
            off, end = end, end + ll
            raw_label = arena[off:end]
            label = labels.get(raw_label)
            if label is None:
                label = decode_utf8(raw_label, f"{self.label}: event label", strict=False)
                if len(labels) < 1024:
                    labels[raw_label] = label
            off, end = end, end + el
            entity_id = arena[off:end].decode("utf-8", "replace")
            off = end
            payload: bytes | None = None
            if flags & lib.DH_REC_HAS_PAYLOAD:
                payload = arena[off : off + pl]
                off += pl
            if flags & _BAD or not 0 <= op < 3:
                append(self._error(flags, op, pl, source_id, entity_id))
                continue
            if bootstrap:
                append(
                    BootstrapEvent(
                        source_id, ts, ChangeOp.INSERT, label, entity_id, payload, codec, seq
                    )
                )
            else:
                append(
                    SourceEventWrapper(source_id, ts, _OPS[op], label, entity_id, payload, codec)
                )

    def _error(self, flags: int, op: int, size: int, source_id: str, entity_id: str) -> Exception:
        where = f"{self.label}: event {entity_id!r} from {source_id!r}"
        if flags & lib.DH_REC_OVERSIZE:
            return PluginProtocolError(
                f"{where}: payload of {size} bytes exceeds the maximum of "
                f"{MAX_PAYLOAD_SIZE}; dropped"
            )
        if flags & lib.DH_REC_NULL_PAYLOAD:
            return PluginProtocolError(
                f"{where}: NULL payload from a plugin that declares a payload format"
            )
        if flags & lib.DH_REC_BAD_HINT:
            return PluginProtocolError(
                f"{where}: a routing hint is NULL or longer than {lib.DH_MAX_HINT_LEN} bytes"
            )
        return PluginProtocolError(f"{where}: {op} is not a valid FfiChangeOp (0, 1, 2)")

    async def wait(self) -> None:
        """Wait until there may be something to drain."""
        if lib.dh_chan_arm_consumer(self.key) == 0:
            await self.notifier.wait()

    def close(self) -> None:
        """Refuse further pushes (blocked plugin callbacks return false)."""
        if not self.released:
            lib.dh_chan_close(self.key)

    def mark_ended(self) -> None:
        """Treat the stream as ended once the queue is empty."""
        self.close()

    def release(self) -> None:
        """Release queued events and forget the key; idempotent."""
        if not self.released:
            self.released = True
            lib.dh_chan_release(self.key)
            self.notifier.close()


def _close_receiver(channel: EventChannel, vt: Any) -> None:
    channel.close()
    if vt.drop_fn != NULL:
        vt.drop_fn(vt.state)
    channel.release()


class _ReceiverProxy(Generic[E]):
    _kind: ClassVar[int]
    _push_ptr: ClassVar[Any]
    _what: ClassVar[str]

    def __init__(
        self,
        vt: Any,
        *,
        codec: PayloadCodec | None,
        label: str,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._vt = vt
        self.label = f"{label} {self._what}"
        self._channel = EventChannel(self._kind, codec, self.label, capacity)
        self._started = False
        self._buffer: collections.deque[Any] = collections.deque()
        self._finalizer = weakref.finalize(self, _close_receiver, self._channel, vt)
        try:
            _abi.require_functions(vt, ("start_push_fn",), self.label)
        except PluginProtocolError:
            self._finalizer()
            raise

    async def _start(self) -> None:
        self._started = True
        await anyio.to_thread.run_sync(
            self._vt.start_push_fn, self._vt.state, self._push_ptr(), self._channel.ctx
        )

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __aiter__(self) -> _ReceiverProxy[E]:
        return self

    async def __anext__(self) -> E:
        buffer = self._buffer
        if buffer:
            item = buffer.popleft()
        else:
            item = await self._refill()
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[no-any-return]

    async def _refill(self) -> Any:
        if not self._started and not self.closed:
            await self._start()
        channel = self._channel
        buffer = self._buffer
        await anyio.lowlevel.checkpoint()
        while True:
            if self.closed:
                raise StopAsyncIteration
            channel.drain(buffer)
            if buffer:
                return buffer.popleft()
            if channel.ended:
                raise StopAsyncIteration
            await channel.wait()

    async def aclose(self) -> None:
        """Stop receiving: the plugin's next push gets ``false``; the receiver
        is dropped and queued events are released.  Idempotent."""
        self._buffer.clear()
        if self._finalizer.alive:
            await anyio.to_thread.run_sync(self._finalizer)

    async def __aenter__(self) -> _ReceiverProxy[E]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close_now(self) -> None:
        """Synchronous :meth:`aclose` (may block while the plugin drops the receiver)."""
        self._buffer.clear()
        self._finalizer()

    def stats(self) -> dict[str, int]:
        """Queue figures of the underlying channel (for monitoring)."""
        out = ffi.new("DhChanStats *")
        if self.closed or lib.dh_chan_stats(self._channel.key, out) != 0:
            return {"queued": 0, "capacity": 0, "pushed": 0, "rejected": 0}
        return {
            "queued": out.queued,
            "capacity": out.capacity,
            "pushed": out.pushed,
            "rejected": out.rejected,
        }


class ChangeReceiverProxy(_ReceiverProxy[SourceEventWrapper]):
    """Change events of one subscription (``FfiChangeReceiver``)."""

    _kind = lib.DH_KIND_SOURCE_EVENTS
    _push_ptr = staticmethod(lib.dh_change_push_ptr)
    _what = "change receiver"


class BootstrapReceiverProxy(_ReceiverProxy[BootstrapEvent]):
    """Bootstrap events of one subscription (``FfiBootstrapReceiver``)."""

    _kind = lib.DH_KIND_BOOTSTRAP_EVENTS
    _push_ptr = staticmethod(lib.dh_bootstrap_push_ptr)
    _what = "bootstrap receiver"
