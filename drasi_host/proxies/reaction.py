"""``ReactionProxy``: query results from Python to a reaction plugin.

A reaction *pulls* its results (ABI.md section 7): at every start the host
calls ``start_result_push_fn`` with a callback, and the plugin's own thread
calls it in a loop; each call blocks until the next result and returns a
``DrasiPayload`` the plugin releases, or NULL once the reaction is stopping.

The callback is ``dh_result_pull`` of ``host.c`` and its context is the key
of a bounded native results channel created for that start, so the whole
exchange happens in C without the GIL:

* :meth:`ReactionProxy.enqueue_query_result` encodes the result with the
  plugin's payload codec and pushes the bytes without blocking
  (``dh_results_push`` copies them into a C-heap ``DrasiPayload``);
  :meth:`ReactionProxy.enqueue_query_results` pushes a whole batch under one
  lock with one wake-up.  A plugin thread asleep in its pull is woken once
  enough results are queued or at the end of the event loop's tick, not for
  every result.  When the channel is full the push arms the channel and the
  coroutine waits on the :class:`~drasi_host.channels.ResultChannel`'s
  notifier until the plugin pulls: back-pressure without a thread per call.
* ``stop()`` and ``aclose()`` first *close* the channel, so a pull blocked
  in C returns NULL at once and the plugin's loop ends, then call the
  plugin.  Results still queued at that point are released, not delivered;
  :meth:`ReactionProxy.flush` waits for the plugin to pull everything first.
  The stopped channel is then released: a late pull naming its key is
  answered NULL immediately.

An opaque-payload plugin (no ``drasi_plugin_payload_format``) cannot be given
results: the host does not know how to build them, and says so.

FFI 0.13 reactions take the same calls.  Their results are encoded as
MessagePack ``QueryResult`` documents (ABI-0.13.md section 12.4) and handed
over as ``FfiQueryResult`` envelopes through the channel and callback of the
reaction's :class:`~drasi_host.proxies._generation.Generation`.  The plugin's
forwarder ends with one call carrying the ``(void*)1`` exit sentinel; after
``stop_fn`` the host waits for it (at most
:data:`~drasi_host._events013.EXIT_SENTINEL_TIMEOUT` seconds, in a worker
thread), and before the reaction's ``drop_fn`` too (on the drop thread).
When it never comes the reaction is leaked, with a warning, rather than
dropped while its forwarder may still use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, ClassVar

import anyio

from .. import _abi
from .._abi import NULL, lib
from .._checkpoint import cancel_pending, checkpoint_if_cancelled
from .._events013 import EXIT_SENTINEL_TIMEOUT, ResultChannel013
from ..channels import ResultChannel
from ..errors import ClosedError, DrasiHostError, PayloadFormatError
from ..logs import CallbackContext
from ..models import QueryResult, ReactionRuntimeContext, RecoveryPolicy
from ..payloads import MAX_PAYLOAD_SIZE, PayloadCodec
from ._component import ComponentProxy
from ._generation import GEN_04, Generation

__all__ = ["DEFAULT_RESULT_CAPACITY", "ReactionProxy"]

#: Results queued between the host and a reaction plugin per start.
DEFAULT_RESULT_CAPACITY = 1024

_log = logging.getLogger("drasi_host.reaction")

_DH_OK = lib.DH_OK
#: Results encoded and pushed together by ``enqueue_query_results``.
_CHUNK = 1024


class _Forwarder:
    """The result forwarder of a 0.13 reaction: the key of the channel it
    pulls from until its exit sentinel has been seen, and whether a sentinel
    never came.  Shared with the release steps (which must not refer to the
    proxy)."""

    def __init__(self, results: ResultChannel013, vt: Any, label: str) -> None:
        self.results = results
        self.vt = vt
        self.label = label
        self.key = 0
        self.stuck = False

    async def stopped(self, key: int) -> None:
        """After ``stop_fn``: wait (bounded, in a worker thread) for the
        sentinel of the start whose channel is ``key``."""
        if key and not await self.results.wait_exited(key, EXIT_SENTINEL_TIMEOUT):
            self.stuck = True
            _log.warning(
                "%s: no exit sentinel from the result forwarder within %s s of stop",
                self.label,
                EXIT_SENTINEL_TIMEOUT,
            )
        if self.key == key:
            self.key = 0

    def before_drop(self) -> None:
        """Release step before ``drop_fn`` (on the drop thread; the channel is
        closed already): wait for a running forwarder's sentinel; without one,
        leak the reaction instead of dropping it."""
        key = self.key
        if key and not self.results.wait_exited_blocking(key, EXIT_SENTINEL_TIMEOUT):
            self.stuck = True
        if self.stuck:
            _log.warning(
                "%s: the result forwarder never confirmed its exit; the reaction is "
                "leaked (its drop_fn is not called) rather than risk a use-after-free",
                self.label,
            )
            self.vt.drop_fn = NULL


class ReactionProxy(ComponentProxy):
    """A reaction instance created by a plugin (``ReactionVtable``)."""

    component_type: ClassVar[str] = "reaction"
    _required: ClassVar[tuple[str, ...]] = (
        *ComponentProxy._required,
        "query_ids_fn",
        "start_result_push_fn",
    )

    def __init__(
        self,
        vt: Any,
        *,
        plugin_label: str,
        codec: PayloadCodec | None,
        media_type: str | None,
        callbacks: CallbackContext,
        generation: Generation = GEN_04,
    ) -> None:
        super().__init__(
            vt,
            plugin_label=plugin_label,
            codec=codec,
            media_type=media_type,
            callbacks=callbacks,
            generation=generation,
        )
        self.query_ids: list[str] = []
        self._query_id_set: frozenset[str] = frozenset()
        #: Capacity of the results channel of the next start.
        self.result_capacity = DEFAULT_RESULT_CAPACITY
        self._results: ResultChannel = generation.result_channel()
        if generation.result_codec is not None:
            self._codec = generation.result_codec
        # Closing wakes a plugin thread blocked in a pull and producers
        # waiting for space; the channel goes before the plugin's drop_fn.
        results = self._results

        def close_channel() -> None:
            results.close()

        self._life.at_close(close_channel)
        self._life.own(results.shutdown)
        self._forwarder: _Forwarder | None = None
        if isinstance(results, ResultChannel013):
            self._forwarder = _Forwarder(results, vt, self.label)
            self._life.own(self._forwarder.before_drop)  # runs first
        self._wait_lock: anyio.Lock | None = None

    def _describe(self) -> None:
        super()._describe()
        with self._life.entered():
            try:
                self.query_ids = _abi.take_string_array(
                    self._vt.query_ids_fn(self._vt.state), f"{self.label} query_ids"
                )
            except DrasiHostError as exc:
                self._attributed(exc)
                raise
        self._query_id_set = frozenset(self.query_ids)

    # ---- what FFI 0.13 reactions add (None for 0.4 reactions) --------------------------

    @property
    def is_durable(self) -> bool | None:
        """Whether the reaction needs a durable state store (FFI 0.13
        ``is_durable_fn``); None for a 0.4 reaction or without the function."""
        return self._optional_bool("is_durable_fn", "is_durable")

    @property
    def needs_snapshot_on_fresh_start(self) -> bool | None:
        """Whether the reaction wants a snapshot of its queries on its first
        start (FFI 0.13 ``needs_snapshot_on_fresh_start_fn``); None for a 0.4
        reaction or without the function."""
        return self._optional_bool(
            "needs_snapshot_on_fresh_start_fn", "needs_snapshot_on_fresh_start"
        )

    @property
    def default_recovery_policy(self) -> RecoveryPolicy | None:
        """The reaction's recovery policy (FFI 0.13
        ``default_recovery_policy_fn``; a value the ABI does not list means
        ``STRICT``); None for a 0.4 reaction or without the function."""
        fn = self._optional("default_recovery_policy_fn")
        if fn is None:
            return None
        with self._life.entered():
            raw = int(fn(self._vt.state))
        try:
            return RecoveryPolicy(raw)
        except ValueError:
            return RecoveryPolicy.STRICT

    # ---- lifecycle ----------------------------------------------------------------

    async def initialize(self, context: ReactionRuntimeContext) -> None:
        """Hand the plugin its runtime context (log routing, state store,
        identity, and for FFI 0.13 the snapshot fetcher), once, before
        anything else.  ``context.reaction_id`` must
        be this reaction's id (ValueError)."""
        if not isinstance(context, ReactionRuntimeContext):
            raise TypeError(
                f"{self.label}: initialize() needs a ReactionRuntimeContext, "
                f"not {type(context).__name__}"
            )
        await self._initialize(
            context.instance_id,
            context.reaction_id,
            context.state_store,
            context.identity_provider,
            id_field="reaction_id",
            snapshot_fetcher=context.snapshot_fetcher,
        )

    async def _start(self) -> None:
        """A fresh results channel, ``start_result_push_fn`` (once per start,
        before ``start_fn``), then ``start_fn``."""
        key = self._results.open(self.result_capacity)
        try:
            await self._call(
                self._vt.start_result_push_fn,
                self._vt.state,
                self._gen.result_push_ptr(),
                _abi.key_ctx(key),
            )
            if self._forwarder is not None:
                self._forwarder.key = key
            await self._call_result("start")
        except BaseException:
            if self._forwarder is not None and self._forwarder.key == key:
                self._results.close()
                await self._forwarder.stopped(key)
            self._results.release(key)
            raise

    async def _stop(self) -> None:
        """Stop delivery (queued results are dropped; see :meth:`flush`), then
        the plugin's ``stop_fn``."""
        key = self._results.close()
        try:
            await self._call_result("stop")
        finally:
            if self._forwarder is not None:
                with anyio.CancelScope(shield=True):
                    await self._forwarder.stopped(key)
            self._results.release(key)

    # ---- results ------------------------------------------------------------------

    def _codec_or_raise(self) -> PayloadCodec:
        codec = self._codec
        if codec is None:
            raise PayloadFormatError(
                f"{self.label}: plugin {self._plugin_label} exports no payload format "
                "(drasi_plugin_payload_format), so the host cannot build query results "
                "for it (opaque-payload plugin)"
            )
        return codec

    def _encode(self, codec: PayloadCodec, result: QueryResult) -> bytes:
        data = codec.encode_query_result(result)
        if len(data) > MAX_PAYLOAD_SIZE:
            raise self._too_large(result, len(data))
        return data

    def _too_large(self, result: QueryResult, size: int) -> PayloadFormatError:
        return PayloadFormatError(
            f"{self.label}: query result of query {result.query_id!r} encodes to "
            f"{size} bytes, over the limit of {MAX_PAYLOAD_SIZE}"
        )

    def _check_result(self, result: object, operation: str) -> None:
        """The argument rules of the enqueue calls (before anything is queued)."""
        if type(result) is not QueryResult and not isinstance(result, QueryResult):
            raise TypeError(
                f"{self.label}: {operation}() takes QueryResult objects, "
                f"not {type(result).__name__}"
            )
        if result.query_id not in self._query_id_set:
            raise ValueError(
                f"{self.label}: query result of query {result.query_id!r}, which is not "
                f"one of the reaction's query_ids {self.query_ids!r}"
            )

    async def enqueue_query_result(self, result: QueryResult) -> int:
        """Queue one result for the plugin; waits while the channel is full.
        Returns the size of the encoded document handed to the plugin.

        Raises TypeError for anything but a :class:`QueryResult`, ValueError
        for a query id not among ``query_ids``, :class:`LifecycleError`
        before ``initialize`` and when the reaction is not running,
        :class:`ClosedError` once closed, and :class:`PayloadFormatError` for
        an opaque-payload plugin or a result that cannot be encoded or
        exceeds ``MAX_PAYLOAD_SIZE``.  A cancelled call has queued nothing.
        """
        if cancel_pending():
            await checkpoint_if_cancelled()
        if self._life.closing or self._state is None:
            self._require_initialized("enqueue_query_result")
        if type(result) is not QueryResult or result.query_id not in self._query_id_set:
            self._check_result(result, "enqueue_query_result")  # raises unless a subclass
        codec = self._codec
        if codec is None:
            codec = self._codec_or_raise()
        data = codec.encode_query_result(result)
        if len(data) > MAX_PAYLOAD_SIZE:
            raise self._too_large(result, len(data))
        rc = self._results.push(data)
        if rc != _DH_OK:
            await self._push_waiting(data, rc)
        return len(data)

    async def enqueue_query_results(self, results: Iterable[QueryResult]) -> int:
        """Queue results in order (one cancellation check, and one lock and
        one wake-up of the plugin's thread per run that fits); returns how
        many were queued.  On an error, the results before the failing one
        are queued."""
        if cancel_pending():
            await checkpoint_if_cancelled()
        self._require_initialized("enqueue_query_results")
        codec = self._codec_or_raise()
        encode = self._encode
        check = self._check_result
        count = 0
        chunk: list[bytes] = []
        try:
            for result in results:
                check(result, "enqueue_query_results")
                chunk.append(encode(codec, result))
                if len(chunk) == _CHUNK:
                    count += await self._push_documents(chunk)
                    chunk = []
        except Exception:
            if chunk:  # the results before the failing one are queued
                await self._push_documents(chunk)
            raise
        if chunk:
            count += await self._push_documents(chunk)
        return count

    async def _push_documents(self, documents: list[bytes]) -> int:
        done = 0
        while done < len(documents):
            rest = documents[done:] if done else documents
            taken = self._results.push_many(rest)
            if taken > 0:
                done += taken
                continue
            # Full (0) or refused (< 0): wait for room with the first document.
            await self._push_waiting(rest[0], lib.DH_FULL if taken == 0 else taken)
            done += 1
        return done

    async def _push_waiting(self, data: bytes, rc: int) -> None:
        """The slow path: wait for space while the channel is full.  A waiter
        counts as a call in flight, so the notifier it waits on outlives it."""
        results = self._results
        if self._wait_lock is None:
            self._wait_lock = anyio.Lock()
        with self._life.entered():
            async with self._wait_lock:  # one waiter on the notifier at a time
                if rc == lib.DH_FULL:
                    # Push again under the lock: a refused push arms the notifier,
                    # and another waiter may have taken the earlier wake-up.
                    rc = results.push(data)
                while rc == lib.DH_FULL:
                    try:
                        await results.notifier.wait()
                    except ClosedError:
                        rc = lib.DH_CLOSED_OR_UNKNOWN
                        break
                    rc = results.push(data)
        if rc == lib.DH_OK:
            return
        if rc == lib.DH_NO_MEMORY:
            raise MemoryError(f"{self.label}: malloc failed for a query result")
        self._check_open()
        self._lifecycle_error(
            "enqueue_query_result", "is not running: start it before enqueueing query results"
        )

    def _stats(self) -> Any:
        """The current results channel's ``DhChanStats``, or None without one."""
        return self._results.stats()

    @property
    def pending(self) -> int:
        """Results queued but not yet pulled by the plugin."""
        stats = self._stats()
        return 0 if stats is None else int(stats.queued)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the plugin has pulled every queued result.

        Returns True when nothing is left, False when ``timeout`` (seconds)
        passed or the reaction stopped with results still queued.
        """
        delay = 0.0005
        with anyio.move_on_after(timeout):
            while True:
                stats = self._stats()
                if stats is None or stats.queued == 0:
                    return True
                if stats.closed:
                    return False
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.01)
        return False
