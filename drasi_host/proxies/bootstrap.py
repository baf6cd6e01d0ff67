"""Bootstrap providers in both directions.

**Plugin provider -> Python** (:class:`BootstrapProviderProxy`).  A plugin's
``BootstrapProviderVtable`` has one blocking call, ``bootstrap_fn``, which
pushes records into a sender and returns how many it sent.  The proxy gives
it a host-built ``FfiBootstrapSender`` whose state is the key of a native
bootstrap-event channel (``host.c``), runs ``bootstrap_fn`` in a worker
thread, and meanwhile drains the channel on the event loop into
:class:`BootstrapEvent` objects that it sends into the caller's anyio stream.
The channel is bounded, so a slow consumer holds the plugin back inside its
``send_fn``.  When the consumer closes its end (or the call is cancelled) the
channel is closed, every later ``send_fn`` answers non-zero, and the plugin
returns the count it reached.  The plugin object is released (``drop_fn``)
exactly once, by :meth:`BootstrapProviderProxy.aclose` or a finaliser, and
never while a bootstrap is running or a source still holds it.

**Python provider -> plugin** (:func:`build_provider_vtable`,
:func:`attach_bootstrap_provider`).  A source plugin accepts a bootstrap
provider as a heap ``BootstrapProviderVtable`` it owns.  The host builds one
(``dh_bootstrap_provider_vtable_new``) whose state is a key in
:data:`drasi_host._callbacks.handles` naming a :class:`_HostProvider`: any
object with an ``async bootstrap(request, context, event_tx) -> int`` (a
pure-Python provider, or a :class:`BootstrapProviderProxy` of another
plugin).  When the source plugin calls ``bootstrap_fn`` from its own thread,
``dh_py_bootstrap`` copies the arguments and runs the provider on the event
loop captured when the vtable was built (``anyio.from_thread.run``).  Each
event is encoded in the *source* plugin's payload format and handed to the
plugin's ``send_fn`` in a worker thread, a batch at a time, because
``send_fn`` may block.  The envelope is borrowed for the call; the payload
(one C-heap block holding the document and the routing hints) is taken by
the plugin, which releases it with the event's ``drop_fn``.  When the plugin
drops the vtable, ``dh_py_provider_drop`` forgets the key.
"""

from __future__ import annotations

import collections
import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from .. import _abi
from .._abi import NULL, Borrowed, ffi, lib
from .._callbacks import c_callback, handles
from ..channels import EventChannel
from ..errors import DrasiHostError, PayloadFormatError, PluginCallError, PluginProtocolError
from ..logs import CallbackContext, _Route
from ..models import BootstrapContext, BootstrapEvent, BootstrapRequest
from ..payloads import MAX_PAYLOAD_SIZE, PayloadCodec
from ..protocols import BootstrapProvider

__all__ = [
    "DEFAULT_EVENT_CAPACITY",
    "BootstrapProviderProxy",
    "attach_bootstrap_provider",
    "build_provider_vtable",
]

_log = logging.getLogger("drasi_host.bootstrap")

#: Bootstrap events buffered between a plugin provider and the event loop.
DEFAULT_EVENT_CAPACITY = 256
#: Events a Python provider may run ahead of the plugin's ``send_fn``, and how
#: many are handed to ``send_fn`` per worker-thread call.
_PROVIDER_BUFFER = 64
_SEND_BATCH = 64


# ---- forwarding a bootstrap-event channel ------------------------------------


async def _forward(
    channel: EventChannel,
    event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    errors: list[BaseException],
) -> None:
    """Drain ``channel`` into ``event_tx`` until the stream ends.

    Whenever it stops early (the receiving side closed, an event that breaks
    the ABI, or cancellation) it closes the channel, so the plugin's
    ``send_fn`` answers non-zero and ``bootstrap_fn`` returns.  Errors are
    kept in ``errors`` rather than raised, so the caller sees them without an
    exception group.
    """
    batch: collections.deque[Any] = collections.deque()
    finished = False
    try:
        while True:
            channel.drain(batch)
            while batch:
                item = batch.popleft()
                if isinstance(item, Exception):
                    raise item
                await event_tx.send(item)
            if channel.ended:
                finished = True
                return
            await channel.wait()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass  # the consumer went away: close the channel below
    except Exception as exc:
        errors.append(exc)
    finally:
        if not finished:
            channel.close()


# ---- a plugin's provider as a Python object ---------------------------------


def _drop_vtable(vt: Any) -> None:
    if vt.drop_fn != NULL:
        vt.drop_fn(vt.state)


class BootstrapProviderProxy:
    """A bootstrap provider created by a plugin (``BootstrapProviderVtable``).

    ``await bootstrap(request, context, event_tx)`` streams the records into
    ``event_tx`` (which it does not close) and returns how many the plugin
    sent.  ``aclose()`` / ``async with`` release the plugin object; when the
    proxy was handed to a source with ``set_bootstrap_provider``, the release
    waits until that source lets go of it, and a bootstrap in progress always
    finishes first.
    """

    def __init__(
        self,
        vt: Any,
        *,
        plugin_label: str,
        codec: PayloadCodec | None,
        media_type: str | None,
        callbacks: CallbackContext,
        log_route: _Route | None = None,
    ) -> None:
        self._vt = vt
        self._codec = codec
        self.payload_format = media_type
        self._callbacks = callbacks
        self._log_route = log_route
        self.label = f"{plugin_label} bootstrap provider"
        #: Capacity of the channel between the plugin and the event loop.
        self.event_capacity = DEFAULT_EVENT_CAPACITY
        self._lock = threading.Lock()
        self._running = 0
        self._leases = 0
        self._closing = False
        self._finalizer = weakref.finalize(self, _drop_vtable, vt)
        try:
            _abi.require_functions(vt, ("bootstrap_fn",), self.label)
        except PluginProtocolError:
            self._finalizer()
            raise

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called (or the plugin object is released)."""
        return self._closing or not self._finalizer.alive

    # ---- use counting ---------------------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            if not self._finalizer.alive or (self._closing and self._leases == 0):
                raise DrasiHostError(f"{self.label} is closed")
            self._running += 1

    def _exit(self) -> bool:
        """End one bootstrap; True when the plugin object should now be released."""
        with self._lock:
            self._running -= 1
            return self._closing and self._running == 0 and self._leases == 0

    def _retain(self) -> None:
        """Held by a host-built vtable a source plugin owns (see ``_HostProvider``)."""
        with self._lock:
            if not self._finalizer.alive:
                raise DrasiHostError(f"{self.label} is closed")
            self._leases += 1

    def _release(self) -> None:
        with self._lock:
            self._leases -= 1
            release = self._closing and self._running == 0 and self._leases == 0
        if release:
            self._finalizer()

    # ---- bootstrap ---------------------------------------------------------------

    async def bootstrap(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int:
        """Run the plugin's ``bootstrap_fn``; returns the number of records it sent.

        Raises :class:`PluginCallError` when the plugin reports an error (a
        negative count) and :class:`PluginProtocolError` for an event that
        breaks the ABI (the plugin is then told the receiver closed).
        """
        self._enter()
        try:
            return await self._bootstrap(request, context, event_tx)
        finally:
            if self._exit():
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._finalizer)

    async def _bootstrap(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int:
        channel = EventChannel(
            lib.DH_KIND_BOOTSTRAP_EVENTS, self._codec, self.label, self.event_capacity
        )
        try:
            sender = ffi.new("FfiBootstrapSender *")
            lib.dh_bootstrap_sender_init(sender, channel.key)
            b = Borrowed()
            nodes, n_nodes = b.str_array(request.node_labels)
            relations, n_relations = b.str_array(request.relation_labels)
            args = (
                self._vt.state,
                b.str(request.query_id),
                nodes,
                n_nodes,
                relations,
                n_relations,
                b.str(request.request_id),
                b.str(context.server_id),
                b.str(context.source_id),
                sender,
            )
            mark = self._log_route.mark() if self._log_route is not None else 0
            errors: list[BaseException] = []
            count = 0
            async with anyio.create_task_group() as tg:
                tg.start_soon(_forward, channel, event_tx, errors)
                try:
                    count = int(await anyio.to_thread.run_sync(self._vt.bootstrap_fn, *args))
                finally:
                    # The caller of bootstrap_fn drops the sender.  Every send
                    # has returned, so closing the channel ends the stream:
                    # the forwarder drains what is queued, then stops.
                    sender.drop_fn(sender.state)
                    channel.mark_ended()
        finally:
            channel.release()
        # The wait for bootstrap_fn is shielded: a cancellation that arrived
        # meanwhile (and cut the stream short) is delivered here.
        await anyio.lowlevel.checkpoint_if_cancelled()
        if errors:
            raise errors[0]
        if count < 0:
            raise PluginCallError(
                f"{self.label}: bootstrap for query {request.query_id!r} failed "
                f"(bootstrap_fn returned {count})",
                plugin_message=(
                    self._log_route.logged_since(mark) if self._log_route is not None else None
                ),
                error_code=count,
            )
        return count

    # ---- release ---------------------------------------------------------------

    async def aclose(self) -> None:
        """Give the provider up; the plugin's ``drop_fn`` runs once nothing
        uses it any more (at once when idle).  Idempotent."""
        with self._lock:
            self._closing = True
            release = self._running == 0 and self._leases == 0
        if release and self._finalizer.alive:
            await anyio.to_thread.run_sync(self._finalizer)

    async def __aenter__(self) -> BootstrapProviderProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<BootstrapProviderProxy {self.label} {state}>"


# ---- a Python provider as a plugin vtable ------------------------------------


class _HostProvider:
    """What the state key of a host-built ``BootstrapProviderVtable`` names."""

    def __init__(
        self,
        provider: BootstrapProvider,
        codec: PayloadCodec,
        label: str,
        token: anyio.lowlevel.EventLoopToken,
    ) -> None:
        self.provider = provider
        self.codec = codec
        self.label = label
        self.token = token
        self.loop_thread = threading.get_ident()
        self.key = 0
        self._lock = threading.Lock()
        self._released = False

    def release(self) -> None:
        """Forget the key and let go of the provider (once)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        handles.remove(self.key)
        if isinstance(self.provider, BootstrapProviderProxy):
            self.provider._release()

    def _envelope(self, event: BootstrapEvent) -> Any:
        document = event.payload_for(self.codec)
        if len(document) > MAX_PAYLOAD_SIZE:
            raise PayloadFormatError(
                f"{self.label}: bootstrap event for entity {event.entity_id!r} encodes to "
                f"{len(document)} bytes, over the limit of {MAX_PAYLOAD_SIZE}"
            )
        return _abi.host_bootstrap_event(
            document,
            event.source_id,
            event.label,
            event.entity_id,
            event.timestamp_us,
            event.sequence,
        )

    def _send_batch(self, batch: Sequence[BootstrapEvent], send_fn: Any, state: Any) -> int:
        """Hand events to the plugin (worker thread); returns how many it took,
        or ``-1 - taken`` once it answers that its receiving side is closed.
        The plugin takes each payload even when it refuses the event."""
        for i, event in enumerate(batch):
            envelope = self._envelope(event)
            if send_fn(state, envelope) != 0:
                return -1 - i
        return len(batch)

    async def run(
        self, request: BootstrapRequest, context: BootstrapContext, send_fn: Any, state: Any
    ) -> int:
        """Run the provider on the event loop; returns the records the plugin
        took, or -1 when the provider (or encoding an event) failed, logged.
        Events the provider sent before failing are still handed over."""
        tx, rx = anyio.create_memory_object_stream[BootstrapEvent](_PROVIDER_BUFFER)
        failures: list[Exception] = []
        sent = 0

        async def produce() -> None:
            async with tx:
                try:
                    await self.provider.bootstrap(request, context, tx)
                except anyio.BrokenResourceError:
                    pass  # the plugin stopped taking records
                except Exception as exc:
                    failures.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            async with rx:
                try:
                    while True:
                        try:
                            batch = [await rx.receive()]
                        except anyio.EndOfStream:
                            break
                        while len(batch) < _SEND_BATCH:
                            try:
                                batch.append(rx.receive_nowait())
                            except (anyio.WouldBlock, anyio.EndOfStream):
                                break
                        taken = await anyio.to_thread.run_sync(
                            self._send_batch, batch, send_fn, state
                        )
                        if taken < 0:
                            sent += -1 - taken
                            tg.cancel_scope.cancel()
                            break
                        sent += taken
                except Exception as exc:
                    failures.append(exc)
                    tg.cancel_scope.cancel()
        if failures:
            failure = failures[0]
            _log.error(
                "%s: bootstrap provider %r failed for query %r after %d records: %r",
                self.label,
                self.provider,
                request.query_id,
                sent,
                failure,
                exc_info=failure,
            )
            return -1
        return sent


def build_provider_vtable(
    provider: BootstrapProvider, *, codec: PayloadCodec | None, label: str
) -> Any:
    """A heap ``BootstrapProviderVtable *`` backed by ``provider``, for a
    source plugin that will own it (it calls ``drop_fn(state)``, then frees
    the block).  ``codec`` is the source plugin's payload codec; an
    opaque-payload plugin (None) cannot receive host-built events.  Must be
    called on the event loop the provider will run on."""
    if codec is None:
        raise PayloadFormatError(
            f"{label} exports no payload format, so it cannot take a bootstrap provider "
            "built by the host (its events would need its own opaque payloads)"
        )
    token = anyio.lowlevel.current_token()
    entry = _HostProvider(provider, codec, label, token)
    if isinstance(provider, BootstrapProviderProxy):
        provider._retain()
    entry.key = handles.add(entry)
    vt = lib.dh_bootstrap_provider_vtable_new(_abi.key_ctx(entry.key))
    if vt == NULL:
        entry.release()
        raise MemoryError(f"{label}: malloc failed for a bootstrap provider vtable")
    return vt


async def attach_bootstrap_provider(
    source_vt: Any, provider: BootstrapProvider, *, codec: PayloadCodec | None, label: str
) -> None:
    """Hand ``provider`` to a source plugin through its
    ``set_bootstrap_provider_fn`` (run in a worker thread).  The plugin owns
    the vtable from then on."""
    _abi.require_functions(source_vt, ("set_bootstrap_provider_fn",), label)
    vt = build_provider_vtable(provider, codec=codec, label=label)
    await anyio.to_thread.run_sync(source_vt.set_bootstrap_provider_fn, source_vt.state, vt)


# ---- the C entry points of host-built vtables ----------------------------------


def _minus_one(_exc: BaseException) -> int:
    return -1


def _none(_exc: BaseException) -> None:
    return None


@ffi.def_extern(name="dh_py_bootstrap")  # type: ignore[untyped-decorator]
@c_callback(_minus_one)
def _on_bootstrap(
    state: Any,
    query_id: Any,
    node_labels: Any,
    node_labels_count: int,
    relation_labels: Any,
    relation_labels_count: int,
    request_id: Any,
    server_id: Any,
    source_id: Any,
    sender: Any,
) -> int:
    entry = handles.get(_abi.ctx_key(state))
    if not isinstance(entry, _HostProvider):
        return -1
    if sender == NULL or sender.send_fn == NULL:
        _log.error("%s: bootstrap_fn called with a NULL sender or send_fn", entry.label)
        return -1
    if threading.get_ident() == entry.loop_thread:
        # Waiting for the event loop on its own thread would deadlock.
        _log.error("%s: bootstrap_fn called on the event loop thread; refused", entry.label)
        return -1
    request = BootstrapRequest(
        query_id=_abi.read_str(query_id, "bootstrap query_id"),
        node_labels=_abi.read_str_array(node_labels, node_labels_count, "bootstrap node_labels"),
        relation_labels=_abi.read_str_array(
            relation_labels, relation_labels_count, "bootstrap relation_labels"
        ),
        request_id=_abi.read_str(request_id, "bootstrap request_id"),
    )
    context = BootstrapContext(
        server_id=_abi.read_str(server_id, "bootstrap server_id"),
        source_id=_abi.read_str(source_id, "bootstrap source_id"),
    )
    count: int = anyio.from_thread.run(
        entry.run, request, context, sender.send_fn, sender.state, token=entry.token
    )
    return count


@ffi.def_extern(name="dh_py_provider_drop")  # type: ignore[untyped-decorator]
@c_callback(_none)
def _on_provider_drop(state: Any) -> None:
    entry = handles.get(_abi.ctx_key(state))
    if isinstance(entry, _HostProvider):
        entry.release()
