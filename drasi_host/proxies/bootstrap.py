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
exactly once, on the drop thread, after :meth:`BootstrapProviderProxy.aclose`
(or a finaliser), and never while a bootstrap is running or a source still
holds it (a :class:`~drasi_host._native.Lease`).

**Python provider -> plugin** (:func:`build_provider_vtable`,
:meth:`SourceProxy.set_bootstrap_provider`).  A source plugin accepts a bootstrap
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
drops the vtable, ``dh_py_provider_drop`` forgets the key and ends the
lease of a provider proxy behind it.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from .. import _abi, _abi013
from .. import _msgpack013 as mp
from .._abi import NULL, Borrowed, ffi, lib
from .._callbacks import c_callback, handles
from .._native import Lease, NativeResource, drop_vtable, on_drop_thread, run_blocking
from ..channels import EventChannel
from ..errors import ClosedError, DrasiHostError, PayloadFormatError, PluginCallError
from ..logs import CallbackContext, _Route
from ..models import BootstrapContext, BootstrapEvent, BootstrapRequest
from ..payloads import MAX_PAYLOAD_SIZE, PayloadCodec
from ..protocols import BootstrapProvider
from ._generation import GEN_04, Generation
from .receivers import BootstrapReceiverProxy

__all__ = [
    "DEFAULT_EVENT_CAPACITY",
    "BootstrapProviderProxy",
    "build_host_provider_vtable013",
    "build_provider_vtable",
    "build_provider_vtable013",
    "check_same_abi",
    "discard_provider_vtable",
    "discard_provider_vtable013",
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


def _bootstrap_args(
    state: Any, b: Borrowed, request: BootstrapRequest, context: BootstrapContext
) -> tuple[Any, ...]:
    """The arguments of ``bootstrap_fn`` from ``state`` to ``source_id``
    (both generations; 0.4 adds the sender); ``b`` keeps them alive."""
    nodes, n_nodes = b.str_array(request.node_labels)
    relations, n_relations = b.str_array(request.relation_labels)
    return (
        state,
        b.str(request.query_id),
        nodes,
        n_nodes,
        relations,
        n_relations,
        b.str(request.request_id),
        b.str(context.server_id),
        b.str(context.source_id),
    )


class BootstrapProviderProxy(NativeResource):
    """A bootstrap provider created by a plugin (``BootstrapProviderVtable``).

    ``await bootstrap(request, context, event_tx)`` streams the records into
    ``event_tx`` (which it does not close) and returns how many the plugin
    sent.  ``aclose()`` / ``async with`` release the plugin object once no
    bootstrap is running; when the proxy was handed to a source with
    ``set_bootstrap_provider``, the release also waits until that source
    lets go of it (the source may go on using it meanwhile).
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
        generation: Generation = GEN_04,
    ) -> None:
        super().__init__(f"{plugin_label} bootstrap provider")
        self._vt = vt
        self._gen = generation
        #: The ABI generation of the plugin: ``"0.4"`` or ``"0.13"``.
        self.abi_version = generation.abi_version
        self._life.own(lambda: drop_vtable(vt))
        self._codec = codec
        self.payload_format = media_type
        self._callbacks = callbacks
        self._log_route = log_route
        #: The plugin library's file name (for error attributes).
        self.plugin = plugin_label
        #: Capacity of the channel between the plugin and the event loop.
        self.event_capacity = DEFAULT_EVENT_CAPACITY

    def _describe(self) -> None:
        """Check the vtable (the factory releases the object when this fails)."""
        try:
            _abi.require_functions(self._vt, ("bootstrap_fn",), self.label)
        except DrasiHostError as exc:
            if exc.plugin is None:
                exc.plugin = self.plugin
            raise

    # ---- bootstrap ---------------------------------------------------------------

    async def bootstrap(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int:
        """Run the plugin's ``bootstrap_fn``; returns the number of records it sent.

        Raises :class:`PluginCallError` when the plugin reports an error (a
        negative count), :class:`PluginProtocolError` for an event that
        breaks the ABI (the plugin is then told the receiver closed), and
        :class:`ClosedError` once the provider is closed.
        """
        with self._life.entered():
            return await self._bootstrap(request, context, event_tx)

    def _leased(self) -> _LeasedProvider:
        """A view that keeps this provider alive, and usable, until released."""
        return _LeasedProvider(self, Lease(self._life))

    async def _bootstrap(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int:
        if self._gen is not GEN_04:
            return await self._bootstrap013(request, context, event_tx)
        channel = EventChannel(
            lib.DH_KIND_BOOTSTRAP_EVENTS, self._codec, self.label, self.event_capacity
        )
        try:
            sender = ffi.new("FfiBootstrapSender *")
            lib.dh_bootstrap_sender_init(sender, channel.key)
            b = Borrowed()
            args = (*_bootstrap_args(self._vt.state, b, request, context), sender)
            mark = self._log_mark()
            errors: list[BaseException] = []
            count = 0
            async with anyio.create_task_group() as tg:
                tg.start_soon(_forward, channel, event_tx, errors)
                try:
                    # Not abandoned on cancellation: the forwarder closes the
                    # channel, the plugin's next send fails and it returns.
                    with anyio.CancelScope(shield=True):
                        count = int(await run_blocking(self._vt.bootstrap_fn, *args))
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
                plugin_message=self._logged_since(mark),
                code=count,
                plugin=self.plugin,
            )
        return count

    async def _bootstrap013(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int:
        """FFI 0.13 (section 9): ``bootstrap_fn`` returns a stream at once;
        its events receiver is drained into ``event_tx`` and its result
        receiver ends the run.  Returns the provider's ``event_count`` (the
        events received when it ends without a result)."""
        gen = self._gen
        b = gen.borrowed()
        args = _bootstrap_args(self._vt.state, b, request, context)
        mark = self._log_mark()
        what = f"{self.label}: bootstrap for query {request.query_id!r}"
        with anyio.CancelScope(shield=True):  # returns at once; never abandoned
            ptr = await run_blocking(self._vt.bootstrap_fn, *args)
        if ptr == NULL:
            raise PluginCallError(
                f"{what} could not start (bootstrap_fn returned NULL)",
                plugin_message=self._logged_since(mark),
                plugin=self.plugin,
            )
        stream = gen.copy_block(ptr, "FfiBootstrapStream")
        events_vt = (
            None if stream.events == NULL else gen.copy_block(stream.events, "FfiBootstrapReceiver")
        )
        result_vt = (
            None
            if stream.result == NULL
            else gen.copy_block(stream.result, "FfiBootstrapResultReceiver")
        )
        if events_vt is None or result_vt is None:
            for half in (events_vt, result_vt):
                if half is not None:
                    await on_drop_thread(functools.partial(drop_vtable, half))
            missing = "events" if events_vt is None else "result"
            raise PluginCallError(
                f"{what} failed: the stream has no {missing} receiver",
                plugin_message=self._logged_since(mark),
                plugin=self.plugin,
            )
        receiver = BootstrapReceiverProxy(
            events_vt,
            codec=None,
            label=self.label,
            capacity=self.event_capacity,
            generation=gen,
            result_vt=result_vt,
        )
        receiver.result_what = what
        received = 0
        try:
            try:
                async for event in receiver:
                    await event_tx.send(event)
                    received += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return received  # the consumer went away: the provider is told so
        except DrasiHostError as exc:
            if exc.plugin is None:
                exc.plugin = self.plugin
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await receiver.aclose()
        outcome = receiver.outcome
        if outcome is None or outcome.event_count is None:
            _log.warning("%s ended without a result after %d events", what, received)
            return received
        if outcome.event_count != received:
            _log.warning(
                "%s: the provider reports %d events, %d were received",
                what,
                outcome.event_count,
                received,
            )
        return outcome.event_count

    def _log_mark(self) -> int:
        return self._log_route.mark() if self._log_route is not None else 0

    def _logged_since(self, mark: int) -> str | None:
        return self._log_route.logged_since(mark) if self._log_route is not None else None


class _LeasedProvider:
    """A provider proxy as held by a host-built vtable a source plugin owns:
    its bootstraps go on while the proxy is closing, until the lease ends."""

    def __init__(self, proxy: BootstrapProviderProxy, lease: Lease) -> None:
        self.proxy = proxy
        self.lease = lease

    async def bootstrap(
        self,
        request: BootstrapRequest,
        context: BootstrapContext,
        event_tx: anyio.abc.ObjectSendStream[BootstrapEvent],
    ) -> int:
        with self.lease.entered():
            return await self.proxy._bootstrap(request, context, event_tx)

    def __repr__(self) -> str:
        return repr(self.proxy)


# ---- a Python provider as a plugin vtable ------------------------------------


class _HostProvider:
    """What the state key of a host-built ``BootstrapProviderVtable`` names."""

    def __init__(
        self,
        provider: BootstrapProvider,
        codec: PayloadCodec | None,
        label: str,
        token: anyio.lowlevel.EventLoopToken,
    ) -> None:
        self.provider = provider
        self.codec = codec
        self.label = label
        self.token = token
        self.loop_thread = threading.get_ident()
        self.key = 0

    def _envelope(self, event: BootstrapEvent) -> Any:
        assert self.codec is not None
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
                        # Never abandoned: the plugin may release the sender
                        # as soon as its bootstrap_fn returns.
                        with anyio.CancelScope(shield=True):
                            taken = await run_blocking(self._send_batch, batch, send_fn, state)
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
    opaque-payload plugin (None) cannot receive host-built events.  A
    :class:`BootstrapProviderProxy` is leased: it is not released before the
    plugin drops the vtable.  Must be called on the event loop the provider
    will run on."""
    if codec is None:
        raise PayloadFormatError(
            f"{label} exports no payload format, so it cannot take a bootstrap provider "
            "built by the host (its events would need its own opaque payloads)"
        )
    token = anyio.lowlevel.current_token()
    held: Any = provider
    if isinstance(provider, BootstrapProviderProxy):
        held = provider._leased()  # ClosedError when it is closed
    entry = _HostProvider(held, codec, label, token)
    entry.key = handles.add(entry)
    vt = lib.dh_bootstrap_provider_vtable_new(_abi.key_ctx(entry.key))
    if vt == NULL:
        _forget(entry.key)
        raise MemoryError(f"{label}: malloc failed for a bootstrap provider vtable")
    return vt


def discard_provider_vtable(vt: Any) -> None:
    """Release a vtable from :func:`build_provider_vtable` that was never
    handed to a plugin (host code only: it runs on the calling thread)."""
    drop_vtable(vt)
    lib.free(vt)


def _forget(key: int) -> None:
    """The plugin let go of a host-built vtable: forget its key and end the
    lease of a provider proxy behind it.  Idempotent."""
    entry = handles.get(key)
    handles.remove(key)
    if isinstance(entry, _HostProvider) and isinstance(entry.provider, _LeasedProvider):
        entry.provider.lease.release()


# ---- the C entry points of host-built vtables ----------------------------------


def _minus_one(_exc: BaseException) -> int:
    return -1


def _none(_exc: BaseException) -> None:
    return None


def _read_request(
    query_id: Any,
    node_labels: Any,
    node_labels_count: int,
    relation_labels: Any,
    relation_labels_count: int,
    request_id: Any,
    server_id: Any,
    source_id: Any,
) -> tuple[BootstrapRequest, BootstrapContext]:
    """Copy the borrowed arguments of a ``bootstrap_fn`` call (both generations)."""
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
    return request, context


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
    request, context = _read_request(
        query_id,
        node_labels,
        node_labels_count,
        relation_labels,
        relation_labels_count,
        request_id,
        server_id,
        source_id,
    )
    count: int = anyio.from_thread.run(
        entry.run, request, context, sender.send_fn, sender.state, token=entry.token
    )
    return count


@ffi.def_extern(name="dh_py_provider_drop")  # type: ignore[untyped-decorator]
@c_callback(_none)
def _on_provider_drop(state: Any) -> None:
    _forget(_abi.ctx_key(state))


# ---- a 0.13 plugin's provider handed to a 0.13 source ----------------------------


def check_same_abi(provider: object, abi_version: str, label: str) -> None:
    """Refuse a provider proxy of the other ABI generation than the source
    (``label``, speaking ``abi_version``) with a :class:`DrasiHostError`
    naming both: a vtable never crosses generations (ABI-0.13.md section
    13.6)."""
    theirs = getattr(provider, "abi_version", None)
    if isinstance(provider, BootstrapProviderProxy) and theirs != abi_version:
        raise DrasiHostError(
            f"{label} (FFI {abi_version}) cannot take {provider.label} (FFI {theirs}) as its "
            "bootstrap provider: providers do not cross ABI generations (feed the source's "
            "data through Python instead)",
            plugin=getattr(provider, "plugin", None),
        )


class _Wrapped013:
    """What the state key of a host-built 0.13 ``BootstrapProviderVtable``
    names: the provider proxy's vtable and the lease keeping it alive."""

    def __init__(self, proxy: BootstrapProviderProxy) -> None:
        self.vt = proxy._vt
        self.lease = Lease(proxy._life)  # ClosedError when the proxy is closing
        self.label = proxy.label


def build_provider_vtable013(proxy: BootstrapProviderProxy) -> Any:
    """A ``malloc``ed 0.13 ``BootstrapProviderVtable *`` for a 0.13 source
    plugin (which frees it with ``free()`` after calling its ``drop_fn``),
    forwarding ``bootstrap_fn`` to ``proxy``'s plugin: every argument and
    the returned stream are plain C (section 9), so the plugin's stream goes
    to the source unchanged.  ``proxy`` is leased until the source drops the
    vtable, and never released during a ``bootstrap_fn`` call."""
    entry = _Wrapped013(proxy)
    key = handles.add(entry)
    vt = _provider_vtable013(key)
    if vt is None:
        handles.remove(key)
        entry.lease.release()
        raise MemoryError(f"{proxy.label}: malloc failed for a bootstrap provider vtable")
    return vt


def _provider_vtable013(key: int) -> Any:
    """A ``malloc``ed 0.13 ``BootstrapProviderVtable *`` whose state is
    ``key`` and whose functions are the host's; None when ``malloc`` fails."""
    ffi13 = _abi013.ffi
    block = lib.malloc(ffi13.sizeof("BootstrapProviderVtable"))
    if block == NULL:
        return None
    vt = ffi13.cast("BootstrapProviderVtable *", block)
    vt.state = _abi.key_ctx(key)
    vt.executor = NULL
    vt.bootstrap_fn = _BOOTSTRAP_013
    vt.drop_fn = _DROP_013
    return vt


def discard_provider_vtable013(vt: Any) -> None:
    """Release a vtable from :func:`build_provider_vtable013` that was never
    handed to a plugin."""
    _forget013(vt.state)
    lib.free(vt)


def _forget013(state: Any) -> None:
    key = _abi.ctx_key(state)
    entry = handles.get(key)
    if isinstance(entry, (_Wrapped013, _HostProvider013)):
        handles.remove(key)
    if isinstance(entry, _Wrapped013):
        entry.lease.release()


def _null(_exc: BaseException) -> Any:
    return NULL


@c_callback(_null)
def _bootstrap013(state: Any, *args: Any) -> Any:
    entry = handles.get(_abi.ctx_key(state))
    if isinstance(entry, _HostProvider013):
        return _host_stream013(entry, *args)
    if not isinstance(entry, _Wrapped013):
        return NULL
    try:
        with entry.lease.entered():
            return entry.vt.bootstrap_fn(entry.vt.state, *args)
    except ClosedError:
        _log.error("%s: bootstrap_fn called after the source let go of it", entry.label)
        return NULL


@c_callback(_none)
def _drop013(state: Any) -> None:
    _forget013(state)


# ---- a Python provider handed to a 0.13 source -----------------------------------------


class _HostProvider013(_HostProvider):
    """A Python provider behind a host-built 0.13 ``BootstrapProviderVtable``
    (section 9): ``bootstrap_fn`` returns at once a stream of two host-made
    receivers sharing one :class:`_HostRun013`; the events are
    ``BootstrapEventPayload`` MessagePack documents pushed through the
    consumer's callback (``false``: stop), then the end-of-bootstrap result."""

    def _envelope(self, event: BootstrapEvent) -> Any:
        change = event.change
        if change is None:
            raise PayloadFormatError(
                f"{self.label}: bootstrap event for entity {event.entity_id!r} carries no change"
            )
        document = mp.encode_bootstrap_event(
            mp.BootstrapEventPayload(
                source_id=event.source_id,
                timestamp_us=event.timestamp_us,
                change=change,  # type: ignore[arg-type]  # encoded by its attributes
                control=None,
                sequence=event.sequence,
            )
        )
        if len(document) > mp.MAX_FFI_PAYLOAD_BYTES:
            raise PayloadFormatError(
                f"{self.label}: bootstrap event for entity {event.entity_id!r} encodes to "
                f"{len(document)} bytes, over the limit of {mp.MAX_FFI_PAYLOAD_BYTES}"
            )
        return _bootstrap_event013(document, event.timestamp_us, event.sequence)

    def _send_batch(self, batch: Sequence[BootstrapEvent], send_fn: Any, state: Any) -> int:
        """Push events (worker thread); ``-1 - taken`` once the consumer
        answers ``false``.  The consumer owns every envelope it is given."""
        for i, event in enumerate(batch):
            if not send_fn(state, self._envelope(event)):
                return -1 - i
        return len(batch)


def _bootstrap_event013(document: bytes, timestamp_us: int, sequence: int) -> Any:
    """A ``malloc``ed 0.13 ``FfiBootstrapEvent`` owning a ``malloc``ed copy
    of ``document`` (its drop function needs no interpreter)."""
    ffi13 = _abi013.ffi
    block = lib.malloc(ffi13.sizeof("FfiBootstrapEvent"))
    if block == NULL:
        raise MemoryError("malloc failed for a bootstrap event")
    try:
        payload = _abi.malloc_bytes(document)
    except MemoryError:
        lib.free(block)
        raise
    event = ffi13.cast("FfiBootstrapEvent *", block)
    event.payload_ptr = payload
    event.payload_len = len(document)
    event.payload_drop_fn = _BYTES_FREE_013
    event.timestamp_us = timestamp_us
    event.sequence = sequence
    return event


class _HostRun013:
    """One bootstrap of a :class:`_HostProvider013`: the state key of the
    events and result receivers of its stream.

    ``start_push_fn`` starts a thread that runs the provider on the event
    loop and pushes its events; the end of the stream (one ``NULL`` push, on
    every path) makes the result, which goes to the result receiver's
    callback once both have happened (from a thread of its own when the
    result receiver starts later).  An events receiver dropped unstarted
    ends the run with 0 events.  The key is forgotten once both receivers
    were dropped and the result was delivered (or can no longer be asked for).
    """

    def __init__(
        self, entry: _HostProvider013, request: BootstrapRequest, context: BootstrapContext
    ) -> None:
        self.entry = entry
        self.request = request
        self.context = context
        self.key = 0
        self._lock = threading.Lock()
        self._events_started = False
        self._finished = False
        self._count = 0
        self._error: str | None = None
        self._result_cb: Any = None
        self._result_ctx: Any = None
        self._delivered = False
        self._drops = 0

    # events receiver
    def start_events(self, cb: Any, ctx: Any) -> None:
        with self._lock:
            if self._events_started:
                return
            self._events_started = True
        try:
            threading.Thread(
                target=self._run, args=(cb, ctx), name="drasi-bootstrap-013", daemon=True
            ).start()
        except BaseException as exc:  # no thread: the stream still ends, once
            cb(ctx, NULL)
            self._events_over(-1, f"{self.entry.label}: no thread for the bootstrap: {exc!r}")

    def _run(self, cb: Any, ctx: Any) -> None:
        count, error = 0, None
        try:
            count = anyio.from_thread.run(
                self.entry.run, self.request, self.context, cb, ctx, token=self.entry.token
            )
            if count < 0:
                error = f"{self.entry.label}: the bootstrap provider failed (see the host log)"
        except BaseException as exc:  # the event loop is gone, or the like
            count, error = -1, f"{self.entry.label}: the bootstrap provider could not run: {exc!r}"
        finally:
            cb(ctx, NULL)  # the one end of the stream
            self._events_over(count, error)

    def events_dropped(self) -> None:
        with self._lock:
            never = not self._events_started
            self._events_started = True
        if never:
            self._events_over(0, None)
        self._dropped()

    def _events_over(self, count: int, error: str | None) -> None:
        with self._lock:
            self._finished = True
            self._count, self._error = count, error
            deliver = self._result_cb is not None and not self._delivered
            self._delivered = self._delivered or deliver
        if deliver:
            self._deliver()

    # result receiver
    def start_result(self, cb: Any, ctx: Any) -> None:
        with self._lock:
            if self._result_cb is not None:
                return
            self._result_cb, self._result_ctx = cb, ctx
            deliver = self._finished and not self._delivered
            self._delivered = self._delivered or deliver
        if deliver:
            threading.Thread(target=self._deliver, name="drasi-bootstrap-013", daemon=True).start()

    def result_dropped(self) -> None:
        self._dropped()

    def _deliver(self) -> None:
        ffi13 = _abi013.ffi
        block = lib.malloc(ffi13.sizeof("FfiBootstrapResult"))
        result = NULL
        if block != NULL:
            size = ffi13.sizeof("FfiBootstrapResult")
            result = ffi13.cast("FfiBootstrapResult *", block)
            ffi13.buffer(result, size)[:] = bytes(size)  # no position, no error
            result.event_count = self._count
            if self._error:
                text = self._error.encode("utf-8", "replace")
                try:
                    result.error_ptr = _abi.malloc_bytes(text)
                    result.error_len = len(text)
                    result.error_drop_fn = _BYTES_FREE_013
                except MemoryError:
                    pass  # the count says it failed
        try:
            self._result_cb(self._result_ctx, result)
        finally:
            self._forget_if_done()

    def _dropped(self) -> None:
        with self._lock:
            self._drops += 1
        self._forget_if_done()

    def _forget_if_done(self) -> None:
        with self._lock:
            # _delivered implies _finished: it is only set once the events ended
            done = self._drops == 2 and (self._delivered or self._result_cb is None)
        if done:
            handles.remove(self.key)


def build_host_provider_vtable013(provider: BootstrapProvider, *, label: str) -> Any:
    """A ``malloc``ed 0.13 ``BootstrapProviderVtable *`` backed by the
    Python ``provider`` (any object with ``async bootstrap(request, context,
    event_tx)``), for a 0.13 source plugin that owns it.  Must be called on
    the event loop the provider will run on."""
    entry = _HostProvider013(provider, None, label, anyio.lowlevel.current_token())
    entry.key = handles.add(entry)
    vt = _provider_vtable013(entry.key)
    if vt is None:
        handles.remove(entry.key)
        raise MemoryError(f"{label}: malloc failed for a bootstrap provider vtable")
    return vt


def _host_stream013(
    entry: _HostProvider013,
    query_id: Any,
    node_labels: Any,
    node_labels_count: int,
    relation_labels: Any,
    relation_labels_count: int,
    request_id: Any,
    server_id: Any,
    source_id: Any,
) -> Any:
    """``bootstrap_fn`` of a host-built 0.13 provider: a new run's stream
    (NULL label arrays read as empty; NULL when out of memory)."""
    request, context = _read_request(
        query_id,
        node_labels,
        node_labels_count if node_labels != NULL else 0,
        relation_labels,
        relation_labels_count if relation_labels != NULL else 0,
        request_id,
        server_id,
        source_id,
    )
    ffi13 = _abi013.ffi
    sizes = ("FfiBootstrapStream", "FfiBootstrapReceiver", "FfiBootstrapResultReceiver")
    blocks = [lib.malloc(ffi13.sizeof(t)) for t in sizes]
    if any(b == NULL for b in blocks):
        for b in blocks:
            lib.free(b)
        return NULL
    run = _HostRun013(entry, request, context)
    run.key = handles.add(run)
    stream, events, result = (ffi13.cast(f"{t} *", b) for t, b in zip(sizes, blocks, strict=True))
    events.state = result.state = _abi.key_ctx(run.key)
    events.start_push_fn = _EVENTS_START_013
    events.drop_fn = _EVENTS_DROP_013
    result.start_fn = _RESULT_START_013
    result.drop_fn = _RESULT_DROP_013
    stream.events = events
    stream.result = result
    return stream


def _run013(state: Any) -> _HostRun013 | None:
    run = handles.get(_abi.ctx_key(state))
    return run if isinstance(run, _HostRun013) else None


@c_callback(_none)
def _events_start013(state: Any, cb: Any, ctx: Any) -> None:
    run = _run013(state)
    if run is None:
        cb(ctx, NULL)  # a stale state: end the stream at once
        return
    run.start_events(cb, ctx)


@c_callback(_none)
def _events_drop013(state: Any) -> None:
    run = _run013(state)
    if run is not None:
        run.events_dropped()


@c_callback(_none)
def _result_start013(state: Any, cb: Any, ctx: Any) -> None:
    run = _run013(state)
    if run is None:
        cb(ctx, NULL)
        return
    run.start_result(cb, ctx)


@c_callback(_none)
def _result_drop013(state: Any) -> None:
    run = _run013(state)
    if run is not None:
        run.result_dropped()


_BYTES_FREE_013 = _abi013.ffi.addressof(_abi013.lib, "dh13_bytes_free")
_EVENTS_START_013 = _abi013.ffi.callback(
    "void (*)(void *, FfiBootstrapPushCallbackFn, void *)", _events_start013
)
_EVENTS_DROP_013 = _abi013.ffi.callback("void (*)(void *)", _events_drop013)
_RESULT_START_013 = _abi013.ffi.callback(
    "void (*)(void *, FfiBootstrapResultCallbackFn, void *)", _result_start013
)
_RESULT_DROP_013 = _abi013.ffi.callback("void (*)(void *)", _result_drop013)
_BOOTSTRAP_013 = _abi013.ffi.callback(
    "FfiBootstrapStream *(*)(void *, FfiStr, const FfiStr *, size_t, const FfiStr *, size_t, "
    "FfiStr, FfiStr, FfiStr)",
    _bootstrap013,
)
_DROP_013 = _abi013.ffi.callback("void (*)(void *)", _drop013)
