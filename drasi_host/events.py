"""Events received from a plugin: :class:`SourceEventWrapper` and
:class:`BootstrapEvent` (re-exported by :mod:`drasi_host.models` and
:mod:`drasi_host`).

They are the hot path: hundreds of thousands are built per second from the
batches of a channel (:mod:`drasi_host.channels`).  They are plain
``__slots__`` classes holding the routing hints; the payload bytes are sliced
from the batch's byte arena only when ``.payload`` is first read, and the
:class:`~drasi_host.models.SourceChange` is decoded on first access of
``.change``; both are cached.

Events of FFI 0.13 plugins are the same classes, built with their change
(or their :class:`ControlEvent`) already decoded from the MessagePack
payload (:mod:`drasi_host._events013`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .errors import PayloadFormatError, PluginProtocolError

if TYPE_CHECKING:
    from .models import ChangeOp, SourceChange
    from .payloads import PayloadCodec

__all__ = ["BootstrapEvent", "ControlEvent", "ControlKind", "SourceEventWrapper"]

ControlKind = Literal["Future", "FuturesDue", "Subscription"]


@attrs.frozen
class ControlEvent:
    """What an FFI 0.13 source event carries instead of a change: a
    ``Future`` change, or a ``FuturesDue`` / ``Subscription`` control event.

    ``data`` holds the decoded fields: for ``"Future"`` ``element_ref`` (an
    :class:`~drasi_host.models.ElementReference`), ``original_time``,
    ``due_time`` and ``group_signature``; for ``"FuturesDue"`` nothing; for
    ``"Subscription"`` ``query_id``, ``query_node_id``, ``node_labels`` and
    ``rel_labels`` (tuples) and ``operation`` (``"Insert"``, ``"Update"`` or
    ``"Delete"``).  ``data`` takes part in ``==``, not in ``hash()``.
    """

    kind: ControlKind
    data: dict[str, Any] = attrs.field(hash=False)


class SourceEventWrapper:
    """A change event received from a source.

    The routing hints (``source_id``, ``timestamp_us``, ``op``, ``label``,
    ``entity_id``) are plain attributes; ``payload`` is the raw document
    bytes, or None for an opaque-payload plugin.  ``change`` decodes the
    payload with the plugin's codec on first access and caches the result; it
    is None when there is no payload or no codec.  A payload that does not
    decode raises :class:`PluginProtocolError` on every access.

    ``control`` is None except for the ``Future`` changes and control events
    of FFI 0.13 plugins: a :class:`ControlEvent`, with ``change`` None.
    """

    __slots__ = (
        "_change",
        "_codec",
        "_control",
        "_decoded",
        "_end",
        "_payload",
        "_start",
        "entity_id",
        "label",
        "op",
        "source_id",
        "timestamp_us",
    )

    #: Set (with ``_decoded``) by the first ``.change``; a flag rather than
    #: a missing attribute, so the first read raises nothing.
    _change: SourceChange | None
    _decoded: bool
    #: Set only for the events of 0.13 plugins (an unset slot reads as None).
    _control: ControlEvent | None
    #: The payload itself (``_end < 0``), or the arena it is sliced from.
    _payload: bytes | None

    def __init__(
        self,
        source_id: str,
        timestamp_us: int,
        op: ChangeOp,
        label: str,
        entity_id: str,
        payload: bytes | None,
        codec: PayloadCodec | None,
    ) -> None:
        self._decoded = False  # the first `.change` decodes
        self.source_id = source_id
        self.timestamp_us = timestamp_us
        self.op = op
        self.label = label
        self.entity_id = entity_id
        self._payload = payload
        self._start = 0
        self._end = -1
        self._codec = codec

    @property
    def payload(self) -> bytes | None:
        """The raw document bytes (None for an opaque payload)."""
        data = self._payload
        if data is not None and self._end >= 0:
            data = self._payload = data[self._start : self._end]
            self._end = -1
        return data

    @property
    def change(self) -> SourceChange | None:
        """The decoded :class:`~drasi_host.models.SourceChange` (None for
        opaque payloads)."""
        if self._decoded:
            return self._change
        codec = self._codec
        payload = self.payload
        if codec is None or payload is None:
            change = None
        else:
            try:
                change = codec.decode_change(payload)
            except Exception as exc:
                raise PluginProtocolError(
                    f"source {self.source_id!r}: undecodable {codec.media_type} change "
                    f"payload for entity {self.entity_id!r}: {exc}"
                ) from exc
        self._change = change
        self._decoded = True
        return change

    @property
    def control(self) -> ControlEvent | None:
        """The :class:`ControlEvent` of a 0.13 ``Future`` change or control
        event; None for every change (and every 0.4 event)."""
        try:
            return self._control
        except AttributeError:  # never set: the events of the fast paths
            return None

    def payload_for(self, codec: PayloadCodec) -> bytes:
        """The change encoded with ``codec``: the received bytes when they are
        already in that format, otherwise ``change`` re-encoded."""
        payload = self.payload
        if (
            payload is not None
            and self._codec is not None
            and (self._codec.media_type == codec.media_type)
        ):
            return payload
        change = self.change
        if change is None:
            if self.control is not None:
                raise PayloadFormatError(
                    f"source {self.source_id!r}: a {self.control.kind} event carries no "
                    f"change to encode as {codec.media_type}"
                )
            raise PayloadFormatError(
                f"source {self.source_id!r}: the event for entity {self.entity_id!r} has an "
                f"opaque payload and cannot be re-encoded as {codec.media_type}"
            )
        return codec.encode_change(change)

    def _fields_repr(self) -> str:
        payload = self.payload
        shown = "None" if payload is None else f"<{len(payload)} bytes>"
        op = getattr(self.op, "name", repr(self.op))
        return (
            f"source_id={self.source_id!r}, timestamp_us={self.timestamp_us}, op={op}, "
            f"label={self.label!r}, entity_id={self.entity_id!r}, payload={shown}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fields_repr()})"


class BootstrapEvent(SourceEventWrapper):
    """One record of a bootstrap stream: a :class:`SourceEventWrapper` plus
    its ``sequence`` number.

    Pure-Python bootstrap providers build these with :meth:`from_change`.
    Such an event has its ``change`` at once and no ``payload`` (None): the
    bridge that hands it to a plugin encodes it in that plugin's format with
    :meth:`payload_for`, so nothing is encoded twice.
    """

    __slots__ = ("sequence",)

    def __init__(
        self,
        source_id: str,
        timestamp_us: int,
        op: ChangeOp,
        label: str,
        entity_id: str,
        payload: bytes | None,
        codec: PayloadCodec | None,
        sequence: int,
    ) -> None:
        super().__init__(source_id, timestamp_us, op, label, entity_id, payload, codec)
        self.sequence = sequence

    @classmethod
    def from_change(
        cls,
        change: SourceChange,
        *,
        source_id: str | None = None,
        sequence: int = 0,
        timestamp_us: int | None = None,
    ) -> BootstrapEvent:
        """An event carrying ``change``.  ``source_id`` defaults to the
        element's source, ``timestamp_us`` to now; the label is the element's
        first label (or ``""``), the entity id its element id."""
        element = change.element
        event = cls(
            element.reference.source_id if source_id is None else source_id,
            time.time_ns() // 1000 if timestamp_us is None else timestamp_us,
            change.op,
            element.labels[0] if element.labels else "",
            element.reference.element_id,
            None,
            None,
            sequence,
        )
        event._change = change
        event._decoded = True
        return event

    def __repr__(self) -> str:
        return f"BootstrapEvent({self._fields_repr()}, sequence={self.sequence})"
