"""The data paths of FFI 0.13 components (ABI-0.13.md sections 7 to 9, 12).

* :class:`EventChannel013` is an :class:`~drasi_host.channels.EventChannel`
  fed by the 0.13 push callbacks (:func:`drasi_host._abi013.change_push_ptr`,
  :func:`~drasi_host._abi013.bootstrap_push_ptr`): each record holds a
  MessagePack ``SourceEventPayload`` / ``BootstrapEventPayload``, decoded
  strictly when the batch is taken into the same
  :class:`~drasi_host.events.SourceEventWrapper` /
  :class:`~drasi_host.events.BootstrapEvent` objects the 0.4 path makes
  (:func:`source_event_from_payload`, :func:`bootstrap_event_from_payload`).
  A payload that does not decode, is empty, or exceeds the maximum takes the
  event's place as a :class:`~drasi_host.errors.PluginProtocolError`, as a
  record that breaks the 0.4 ABI does; the stream goes on.  The plugin's
  ``op`` hint is not used: the payload says what the event is.
* A 0.13 bootstrap channel also receives the end-of-bootstrap result
  (:func:`drasi_host._abi013.bootstrap_result_ptr`, same context):
  :meth:`EventChannel013.outcome` / :meth:`EventChannel013.wait_outcome`
  give it as a :class:`BootstrapOutcome`.
* :class:`ResultChannel013` is the results channel of a 0.13 reaction: the
  pushed documents become 0.13 ``FfiQueryResult`` envelopes, pulled by the
  plugin through :func:`drasi_host._abi013.result_push_ptr`, which also
  records the forwarder's exit sentinel (:meth:`ResultChannel013.wait_exited`).
  :data:`RESULT_CODEC_013` encodes :class:`~drasi_host.models.QueryResult`
  objects for it (section 12.4).
"""

from __future__ import annotations

import collections
import math
from typing import Any

import anyio
import attrs
import msgspec

from . import _abi013  # noqa: F401  (connects the two cffi modules)
from . import _msgpack013 as mp
from ._abi import ffi, lib
from .channels import (
    _RECORD,
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    EventBatch,
    EventChannel,
    ResultChannel,
    _Raw,
)
from .errors import ClosedError, PayloadFormatError, PluginCallError, PluginProtocolError
from .events import BootstrapEvent, ControlEvent, SourceEventWrapper
from .models import (
    ChangeOp,
    Element,
    ElementReference,
    QueryResult,
    ResultDiff,
    SourceChange,
    _unchecked,
)
from .payloads import PayloadCodec

__all__ = [
    "MAX_FFI_PAYLOAD_BYTES",
    "RESULT_CODEC_013",
    "BootstrapOutcome",
    "EventChannel013",
    "QueryResultCodec013",
    "ResultChannel013",
    "bootstrap_event_from_payload",
    "change_to_model",
    "control_to_model",
    "source_event_from_payload",
]

MAX_FFI_PAYLOAD_BYTES: int = mp.MAX_FFI_PAYLOAD_BYTES
#: How long a stopping 0.13 reaction waits for its forwarder's exit sentinel
#: (upstream's figure) before giving up on dropping it.
EXIT_SENTINEL_TIMEOUT = 5.0

_new = object.__new__
_FLAGS_FIELD = 3  # index of ``flags`` in a record tuple
_NOT_ERRORS = lib.DH_REC_HAS_PAYLOAD | lib.DH_REC_BAD_OP  # the op hint is not used


# ---- the data model ------------------------------------------------------------


def _reference(ref: mp.ElementReference) -> ElementReference:
    return ElementReference(ref.source_id, ref.element_id)


def _optional_reference(ref: mp.ElementReference | None) -> ElementReference | None:
    return None if ref is None else ElementReference(ref.source_id, ref.element_id)


def change_to_model(change: mp.Change) -> SourceChange:
    """A decoded 0.13 change as the :class:`~drasi_host.models.SourceChange`
    the JSON path makes (a ``Delete`` has an element of type None)."""
    e = change.element
    element = _unchecked(
        Element,
        e.type,
        _reference(e.reference),
        e.labels,
        e.effective_from,
        e.properties,
        _optional_reference(e.in_node),
        _optional_reference(e.out_node),
    )
    return SourceChange(change.op, element)


def control_to_model(control: mp.Control) -> ControlEvent:
    """A decoded ``Future`` change or control event as a :class:`ControlEvent`."""
    data = dict(control.data)
    ref = data.get("element_ref")
    if isinstance(ref, mp.ElementReference):
        data["element_ref"] = _reference(ref)
    return ControlEvent(control.kind, data)


def _fill(
    event: SourceEventWrapper,
    payload: mp.SourceEventPayload | mp.BootstrapEventPayload,
    data: bytes,
) -> None:
    change = payload.change
    event.source_id = payload.source_id
    event.timestamp_us = payload.timestamp_us
    event._payload = data
    event._start = 0
    event._end = -1
    event._codec = None
    if change is not None:
        element = change.element
        event.op = change.op
        event.label = element.labels[0] if element.labels else ""
        event.entity_id = element.reference.element_id
        event._change = change_to_model(change)
        event._control = None
    else:
        assert payload.control is not None
        event.op = ChangeOp.UPDATE
        event.label = ""
        event.entity_id = payload.entity_id
        event._change = None
        event._control = control_to_model(payload.control)
    event._decoded = True


def source_event_from_payload(data: bytes) -> SourceEventWrapper:
    """The event a 0.13 ``SourceEventPayload`` describes; raises
    :class:`~drasi_host._msgpack013.PayloadFieldError` when it is malformed."""
    payload = mp.decode_source_event(data)
    event: SourceEventWrapper = _new(SourceEventWrapper)
    _fill(event, payload, data)
    return event


def bootstrap_event_from_payload(data: bytes) -> BootstrapEvent:
    """The event a 0.13 ``BootstrapEventPayload`` describes (with its
    ``sequence``); raises :class:`~drasi_host._msgpack013.PayloadFieldError`
    when it is malformed."""
    payload = mp.decode_bootstrap_event(data)
    event: BootstrapEvent = _new(BootstrapEvent)
    _fill(event, payload, data)
    event.sequence = payload.sequence
    return event


# ---- the end-of-bootstrap result -----------------------------------------------


@attrs.frozen
class BootstrapOutcome:
    """The ``FfiBootstrapResult`` a 0.13 bootstrap ended with.

    ``event_count`` is what the provider says it sent (negative: it failed),
    or None when the stream "ended without a result" (a NULL result);
    ``position`` the opaque source position to resume from, or None;
    ``error`` the provider's error text (decoded lossily), or None.
    """

    event_count: int | None
    position: bytes | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.event_count is not None and self.event_count < 0

    def check(self, what: str, *, plugin: str | None = None) -> int | None:
        """``event_count`` (None without a result); raises
        :class:`PluginCallError` for a failure, with the provider's text as
        ``plugin_message`` (or ``"failed with code N"``)."""
        count = self.event_count
        if count is None or count >= 0:
            return count
        message = self.error if self.error else f"failed with code {count}"
        raise PluginCallError(
            f"{what}: {message}", code=count, plugin_message=self.error, plugin=plugin
        )


# ---- event channels ------------------------------------------------------------


class EventChannel013(EventChannel):
    """An event channel of a 0.13 component (see the module docstring).

    ``kind`` is ``lib.DH_KIND_SOURCE_EVENTS`` or
    ``lib.DH_KIND_BOOTSTRAP_EVENTS``; ``max_payload`` (at most
    :data:`MAX_FFI_PAYLOAD_BYTES`) is the largest payload copied: a larger
    one is refused unread, and reported in the event's place.
    """

    def __init__(
        self,
        kind: int,
        label: str,
        capacity: int = DEFAULT_CAPACITY,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_payload: int = MAX_FFI_PAYLOAD_BYTES,
    ) -> None:
        if max_payload < 1:
            raise ValueError("max_payload must be >= 1")
        self.max_payload = min(max_payload, MAX_FFI_PAYLOAD_BYTES)
        super().__init__(kind, None, label, capacity, max_bytes)
        self._items: list[Any] = []
        self._items_of: _Raw | None = None

    def _chan_params(self) -> tuple[int, int]:
        return lib.DH_CHAN_ABI013, self.max_payload

    # ---- decoding a batch -----------------------------------------------------

    def _take(self) -> _Raw | None:
        raw = super()._take()
        if raw is None:
            self._items = []
            self._items_of = None
        elif raw is not self._items_of:
            self._items = self._decode_all(raw)
            self._items_of = raw
            raw.errors = collections.deque(
                i for i, item in enumerate(self._items) if isinstance(item, Exception)
            )
        return raw

    def _decode_all(self, raw: _Raw) -> list[Any]:
        build = bootstrap_event_from_payload if self.bootstrap else source_event_from_payload
        payloads = raw.payloads
        items: list[Any] = []
        append = items.append
        for rec in _RECORD.iter_unpack(raw.records):
            flags = rec[_FLAGS_FIELD]
            if flags & ~_NOT_ERRORS:
                append(self._flagged(rec))
                continue
            start = rec[8]
            data = payloads[start : start + rec[10]]
            try:
                append(build(data))
            except mp.PayloadFieldError as exc:
                error = PluginProtocolError(f"{self.label}: undecodable event dropped: {exc}")
                error.__cause__ = exc
                append(error)
        return items

    def _flagged(self, rec: tuple[Any, ...]) -> PluginProtocolError:
        flags, size = rec[_FLAGS_FIELD], rec[10]
        if flags & lib.DH_REC_OVERSIZE:
            message = (
                f"payload of {size} bytes exceeds the maximum of {self.max_payload}; dropped unread"
            )
        elif flags & lib.DH_REC_NULL_PAYLOAD:
            message = "event with an empty or NULL payload (nothing to decode); dropped"
        else:
            message = "the host ran out of memory copying the event; dropped"
        return PluginProtocolError(f"{self.label}: {message}")

    def _build(self, raw: _Raw, start: int, stop: int) -> list[Any]:
        return self._items[start:stop]

    def _error(self, raw: _Raw, index: int) -> PluginProtocolError:
        error: PluginProtocolError = self._items[index]
        return error

    def take_batch(self, max_events: int) -> EventBatch | PluginProtocolError | None:
        raw = self._take()
        if raw is None:
            return None
        start = raw.pos
        stop = raw.next_stop(max_events)
        raw.pos = stop if stop > start else start + 1
        if stop == start:
            raw.errors.popleft()
            return self._error(raw, start)
        return EventBatch.of_events(self, self._items[start:stop])

    # ---- the end-of-bootstrap result -------------------------------------------

    def outcome(self) -> BootstrapOutcome | None:
        """The end-of-bootstrap result once it has arrived (None before, and
        once the channel is released)."""
        if self.released:
            return None
        out = ffi.new("DhBootstrapOutcome *")
        state = lib.dh_bootstrap_outcome(self.key, out)
        if state == lib.DH_OUTCOME_NONE:
            return BootstrapOutcome(None)
        if state != lib.DH_OUTCOME_SET:
            return None
        position = ffi.buffer(out.position, out.position_len)[:] if out.position else None
        error = (
            ffi.buffer(out.error, out.error_len)[:].decode("utf-8", "replace")
            if out.error_len
            else None
        )
        return BootstrapOutcome(int(out.event_count), position, error)

    async def wait_outcome(self, timeout: float | None = None) -> BootstrapOutcome | None:
        """Wait (at most ``timeout`` seconds) for the end-of-bootstrap result;
        None when it has not come.  Call it once the event stream has ended:
        it waits on the channel's notifier, which the event consumer uses."""
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            while (outcome := self.outcome()) is None:
                if self.released:
                    return None
                try:
                    await self.notifier.wait()
                except ClosedError:
                    return self.outcome()
            return outcome
        return self.outcome()


# ---- results ---------------------------------------------------------------------


class ResultChannel013(ResultChannel):
    """The results channel of a 0.13 reaction: the documents pushed (encoded
    with :data:`RESULT_CODEC_013`) are queued as 0.13 ``FfiQueryResult``
    envelopes; the plugin pulls them through
    :func:`drasi_host._abi013.result_push_ptr` with :attr:`key` as context.

    After closing a start's channel (:meth:`close`), wait for the plugin's
    forwarder to exit (:meth:`wait_exited`) before releasing the channel
    and before the reaction's ``drop_fn``.
    """

    _flags = lib.DH_CHAN_ABI013

    def has_exited(self, key: int) -> bool:
        """Whether the exit sentinel for channel ``key`` has arrived."""
        return bool(key) and lib.dh_results_exited(key) == 1

    def wait_exited_blocking(self, key: int, timeout: float = EXIT_SENTINEL_TIMEOUT) -> bool:
        """Block (never on the event loop) until the exit sentinel for channel
        ``key`` arrives: True, or False after ``timeout`` seconds or when the
        channel is released meanwhile."""
        if not key:
            return False
        ms = max(0, min(int(timeout * 1000), 2**32 - 1))
        return bool(lib.dh_results_wait_exited(key, ms) == 1)

    async def wait_exited(self, key: int, timeout: float = EXIT_SENTINEL_TIMEOUT) -> bool:
        """:meth:`wait_exited_blocking` in a worker thread."""
        if self.has_exited(key):
            return True
        return await anyio.to_thread.run_sync(
            self.wait_exited_blocking, key, timeout, abandon_on_cancel=True
        )


def _diff_model(diff: mp.ResultDiff) -> ResultDiff:
    return _unchecked(  # type: ignore[no-any-return]
        ResultDiff, diff.type, diff.data, diff.before, diff.after, diff.grouping_keys
    )


class QueryResultCodec013(PayloadCodec):
    """The query results of 0.13 reactions: section 12.4 MessagePack.
    Changes never travel in this form (0.13 events carry their own
    payloads), so :meth:`decode_change` / :meth:`encode_change` refuse."""

    media_type = "application/x-drasi-ffi013-query-result+msgpack"

    def load_document(self, data: bytes) -> Any:
        try:
            return msgspec.msgpack.decode(data)
        except msgspec.DecodeError as exc:
            raise PluginProtocolError(f"not valid MessagePack: {exc}") from exc

    def dump_document(self, document: Any) -> bytes:
        return msgspec.msgpack.encode(document)

    def decode_change(self, data: bytes) -> SourceChange:
        raise PayloadFormatError("0.13 source changes travel in event payloads, not here")

    def encode_change(self, change: SourceChange) -> bytes:
        raise PayloadFormatError("0.13 source changes travel in event payloads, not here")

    def encode_query_result(self, result: QueryResult) -> bytes:
        """The canonical section 12.4 document (sequence and row signatures 0)."""
        return mp.encode_query_result(result)

    def decode_query_result(self, data: bytes) -> QueryResult:
        """A 0.13 document as a :class:`QueryResult` (its ``sequence``,
        ``row_signature`` and ``profiling`` have no place there and are dropped)."""
        decoded = mp.decode_query_result(data)
        return QueryResult(
            decoded.query_id,
            decoded.timestamp,
            [_diff_model(d) for d in decoded.results],
            decoded.metadata,
        )


#: The codec a 0.13 reaction's results are encoded with.
RESULT_CODEC_013 = QueryResultCodec013()
