"""Push delivery from plugin threads into ``async for``.

A receiver owns the plugin's ``FfiChangeReceiver`` / ``FfiBootstrapReceiver``
(a :class:`~drasi_host._native.NativeResource`: its ``drop_fn`` runs once,
on the drop thread, after every call into it has returned) and an
:class:`~drasi_host.channels.EventChannel`.  The first ``async for`` step (or
``batches()``) calls ``start_push_fn`` in a thread of its own, without
waiting for it to return: a plugin may push synchronously inside that call,
and the consumer drains meanwhile.  The plugin's thread then calls a C
function of ``_ffi`` for every event, which copies the event into the channel
and releases it on that thread, blocking while the channel is full (by events
or by bytes).  The event loop takes whole batches and builds
:class:`~drasi_host.events.SourceEventWrapper` /
:class:`~drasi_host.events.BootstrapEvent` objects, or hands them over as
:class:`~drasi_host.channels.EventBatch` columns.

Receivers of FFI 0.13 plugins are the same classes, over the channel and
push callback of their :class:`~drasi_host.proxies._generation.Generation`
(MessagePack payloads decoded into the same event objects).  A 0.13
bootstrap receiver may come with an ``FfiBootstrapResultReceiver``: its
result arrives after the events; the iteration ends with it, raising
:class:`~drasi_host.errors.PluginCallError` (with the plugin's error text)
when the bootstrap failed, and :attr:`BootstrapReceiverProxy.outcome` keeps it.

Closing a receiver closes its channel first (a blocked plugin callback
returns ``false`` and a waiting ``async for`` step raises
:class:`~drasi_host.errors.ClosedError`), waits for ``start_push_fn`` if it
is still running, then releases the channel and runs the receiver's
``drop_fn``.  Calls that arrive afterwards name a stale channel key and are
refused and released in C.
"""

from __future__ import annotations

import collections
import functools
import sys
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Generic, TypeVar

import anyio
import anyio.lowlevel

from .. import _abi, _abi013
from .._abi import lib
from .._events013 import BootstrapOutcome, EventChannel013
from .._native import Lifetime, NativeResource, drop_vtable, run_on_drop_thread
from ..channels import DEFAULT_CAPACITY, DEFAULT_MAX_BYTES, EventBatch, EventChannel
from ..errors import ClosedError, PluginProtocolError
from ..events import BootstrapEvent, SourceEventWrapper
from ..payloads import PayloadCodec
from ._generation import GEN_04, Generation

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_BYTES",
    "BootstrapReceiverProxy",
    "ChangeReceiverProxy",
]

E = TypeVar("E", bound=SourceEventWrapper)

_checkpoint = anyio.lowlevel.checkpoint
#: Events built at a time for per-event iteration (a small working set: the
#: events are used and freed while they are still in the cache).
_BUILD_CHUNK = 256
#: A take of at least this many events means the plugin is streaming ...
_BUSY_BATCH = 32
#: ... and the consumer then sleeps this long instead of arming the notifier,
#: so events arrive in large batches with no wake-up calls (bounded latency).
_LINGER_SECONDS = 0.0005


def _collected(channel: EventChannel, life: Lifetime) -> None:
    """Finalizer of an open receiver: unblock the plugin's pushes, then
    release (with a ResourceWarning) once ``start_push_fn`` has returned."""
    channel.close()
    life.collected()


class _ReceiverProxy(NativeResource, Generic[E]):
    _kind: ClassVar[int]
    _what: ClassVar[str]

    def __init__(
        self,
        vt: Any,
        *,
        codec: PayloadCodec | None,
        label: str,
        capacity: int = DEFAULT_CAPACITY,
        max_bytes: int = DEFAULT_MAX_BYTES,
        generation: Generation = GEN_04,
    ) -> None:
        # The finalizer is made below, once the channel it closes exists.
        super().__init__(f"{label} {self._what}", finalize=False)
        self._vt = vt
        # Owned before anything else can fail: the plugin's receiver is never leaked.
        self._life.own(functools.partial(drop_vtable, vt))
        try:
            _abi.require_functions(vt, ("start_push_fn",), self.label)
            self._channel: EventChannel = generation.event_channel(
                self._kind, codec, self.label, capacity, max_bytes
            )
            self._push = generation.push_ptr(self._kind)
        except BaseException:
            self.close_nowait()
            raise
        self._life.own(self._channel.release)
        self._finalizer = weakref.finalize(
            self, functools.partial(_collected, self._channel, self._life)
        )
        self._finalizer.atexit = False
        self._started = False
        self._buffer: collections.deque[Any] = collections.deque()
        self._errors = 0  # error objects in _buffer

    # ---- starting ---------------------------------------------------------------

    def _start(self) -> None:
        """Call ``start_push_fn`` in a thread of its own, counted as a call in
        flight; the consumer does not wait for it to return."""
        life = self._life
        life.enter()
        self._started = True
        vt = self._vt
        args = (vt.state, self._push, self._channel.ctx)
        then = self._after_start_push()

        def run() -> None:
            try:
                vt.start_push_fn(*args)
                if then is not None:
                    then()
            finally:
                life.leave()

        thread = threading.Thread(target=run, name=f"drasi-start-push {self.label}", daemon=True)
        try:
            thread.start()
        except BaseException:
            life.leave()
            raise

    def _after_start_push(self) -> Any:
        """What to call in the start thread once ``start_push_fn`` has
        returned (None: nothing)."""
        return None

    async def _ended(self) -> None:
        """The event stream has ended (before the iteration stops)."""

    def _closed_error(self) -> ClosedError:
        return ClosedError(f"{self.label} is closed")

    # ---- per-event iteration ----------------------------------------------------

    def __aiter__(self) -> _ReceiverProxy[E]:
        return self

    async def __anext__(self) -> E:
        buffer = self._buffer
        if buffer and not self._errors:
            return buffer.popleft()  # type: ignore[no-any-return]
        return await self._refill()  # type: ignore[no-any-return]

    def _pop(self) -> Any:
        """The next buffered item; raises the error a flagged record reports."""
        item = self._buffer.popleft()
        if isinstance(item, Exception):
            self._errors -= 1
            raise item
        return item

    async def _refill(self) -> Any:
        if self._buffer:  # items are buffered, one of them an error
            return self._pop()
        if self._life.closing:
            raise self._closed_error()
        if not self._started:
            self._start()
        channel = self._channel
        buffer = self._buffer
        if channel.has_pending:  # the rest of a batch already taken
            self._errors += channel.drain(buffer, _BUILD_CHUNK)
            return self._pop()
        await _checkpoint()
        lingered = False
        while True:
            if self._life.closing:
                raise self._closed_error()
            self._errors += channel.drain(buffer, _BUILD_CHUNK)
            if buffer:
                return self._pop()
            if channel.ended:
                await self._ended()
                raise StopAsyncIteration
            if lingered:
                await self._wait()
            else:
                await self._linger()
            lingered = not lingered

    async def _linger(self) -> None:
        """Before paying for a wake-up through the notifier: let a plugin
        that was busy a moment ago queue more (a short sleep while it
        streams, one scheduling round otherwise)."""
        if self._channel.last_batch >= _BUSY_BATCH:
            await anyio.sleep(_LINGER_SECONDS)
        else:
            await _checkpoint()

    async def _wait(self) -> None:
        try:
            await self._channel.wait()
        except ClosedError:
            raise self._closed_error() from None

    # ---- batches ----------------------------------------------------------------

    async def batches(self, max_events: int | None = None) -> AsyncIterator[EventBatch]:
        """Iterate over what is queued, a batch at a time (see
        :class:`~drasi_host.channels.EventBatch`): each batch holds at most
        ``max_events`` events and is never empty; only an empty queue is
        waited for.  May be mixed with per-event iteration: together they
        deliver every event once, in order."""
        if max_events is not None and (not isinstance(max_events, int) or max_events < 1):
            raise ValueError("max_events must be a positive integer or None")
        limit = sys.maxsize if max_events is None else max_events
        while True:
            batch = await self._next_batch(limit)
            if batch is None:
                return
            yield batch

    async def _next_batch(self, limit: int) -> EventBatch | None:
        if self._life.closing:
            raise self._closed_error()
        if not self._started:
            self._start()
        channel = self._channel
        buffer = self._buffer
        if buffer:  # events already built by per-event iteration come first
            events: list[Any] = []
            while buffer and len(events) < limit:
                if isinstance(buffer[0], Exception):
                    if events:
                        break
                    self._pop()
                events.append(buffer.popleft())
            return EventBatch.of_events(channel, events)
        await _checkpoint()
        lingered = False
        while True:
            if self._life.closing:
                raise self._closed_error()
            got = channel.take_batch(limit)
            if isinstance(got, EventBatch):
                return got
            if got is not None:
                raise got
            if channel.ended:
                await self._ended()
                return None
            if lingered:
                await self._wait()
            else:
                await self._linger()
            lingered = not lingered

    # ---- closing ----------------------------------------------------------------

    def close_nowait(self) -> None:
        """Start closing without waiting: pushes are refused from now on."""
        channel = getattr(self, "_channel", None)
        if channel is not None:
            channel.close()
        self._buffer = collections.deque()
        self._errors = 0
        super().close_nowait()

    async def aclose(self) -> None:
        """Stop receiving: the plugin's next push gets ``false``, a waiting
        ``async for`` step raises ClosedError; once ``start_push_fn`` has
        returned the receiver is dropped and queued events are released.
        Idempotent."""
        self.close_nowait()
        await super().aclose()

    def close_now(self, timeout: float | None = None) -> bool:
        """Synchronous :meth:`aclose` (blocks while the plugin drops the
        receiver; never call it on the drop thread).  False on timeout."""
        self.close_nowait()
        return self._life.wait_released(timeout)

    async def __aenter__(self) -> _ReceiverProxy[E]:
        return self

    # ---- monitoring -------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Queue figures of the underlying channel (for monitoring)."""
        return self._channel.stats()

    def __repr__(self) -> str:
        if self.closed:
            state = "closed"
        elif self._channel.ended and not self._buffer and not self._channel.has_pending:
            state = "ended"
        elif self._started:
            state = "receiving"
        else:
            state = "not started"
        stats = self._channel.stats()
        return (
            f"<{type(self).__name__} {self.label!r} {state}, "
            f"{stats['queued']}/{stats['capacity']} queued, {stats['pushed']} pushed>"
        )


class ChangeReceiverProxy(_ReceiverProxy[SourceEventWrapper]):
    """Change events of one subscription (``FfiChangeReceiver``)."""

    _kind = lib.DH_KIND_SOURCE_EVENTS
    _what = "change receiver"


#: How long a 0.13 bootstrap receiver waits, after its last event, for the
#: end-of-bootstrap result.
DEFAULT_RESULT_TIMEOUT = 30.0


class BootstrapReceiverProxy(_ReceiverProxy[BootstrapEvent]):
    """Bootstrap events of one subscription or bootstrap run
    (``FfiBootstrapReceiver``), and for FFI 0.13 the end-of-bootstrap result
    of its ``FfiBootstrapResultReceiver`` (``result_vt``, owned from the
    start like the receiver itself).

    With a result receiver, the iteration ends once the result has arrived
    (at most :attr:`result_timeout` seconds after the last event, else
    :class:`PluginProtocolError`): a failed bootstrap raises
    :class:`PluginCallError` with the plugin's error text, once; the result
    is kept in :attr:`outcome` (a
    :class:`~drasi_host._events013.BootstrapOutcome`: ``event_count``,
    ``position``, ``error``)."""

    _kind = lib.DH_KIND_BOOTSTRAP_EVENTS
    _what = "bootstrap receiver"

    def __init__(
        self,
        vt: Any,
        *,
        codec: PayloadCodec | None,
        label: str,
        capacity: int = DEFAULT_CAPACITY,
        max_bytes: int = DEFAULT_MAX_BYTES,
        generation: Generation = GEN_04,
        result_vt: Any = None,
    ) -> None:
        self._result_vt = result_vt
        self._result_done = result_vt is None
        try:
            super().__init__(
                vt,
                codec=codec,
                label=label,
                capacity=capacity,
                max_bytes=max_bytes,
                generation=generation,
            )
        except BaseException:
            if result_vt is not None:  # owned from the start: dropped here
                run_on_drop_thread(functools.partial(drop_vtable, result_vt))
            raise
        if result_vt is not None:
            self._life.own(functools.partial(drop_vtable, result_vt))
            try:
                _abi.require_functions(result_vt, ("start_fn",), f"{self.label} result receiver")
            except BaseException:
                self.close_nowait()
                raise
        #: The end-of-bootstrap result (0.13 with a result receiver), once it came.
        self.outcome: BootstrapOutcome | None = None
        #: Seconds to wait for the result after the last event.
        self.result_timeout = DEFAULT_RESULT_TIMEOUT
        #: What a failed result is reported as (``"<what> failed: ..."``).
        self.result_what = f"{self.label}: bootstrap"

    def _after_start_push(self) -> Any:
        result_vt = self._result_vt
        if result_vt is None:
            return None
        args = (result_vt.state, _abi013.bootstrap_result_ptr(), self._channel.ctx)

        def start_result() -> None:
            result_vt.start_fn(*args)

        return start_result

    async def _ended(self) -> None:
        if self._result_done:
            return
        self._result_done = True
        channel = self._channel
        assert isinstance(channel, EventChannel013)
        outcome = await channel.wait_outcome(self.result_timeout)
        if outcome is None:
            raise PluginProtocolError(
                f"{self.label}: no end-of-bootstrap result within {self.result_timeout} s "
                "of the last event"
            )
        self.outcome = outcome
        outcome.check(f"{self.result_what} failed")
