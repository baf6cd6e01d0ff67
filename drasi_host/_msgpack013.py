"""MessagePack documents of the Drasi FFI 0.13 (ABI-0.13.md section 12).

A 0.13 plugin hands the host its events as MessagePack ``SourceEventPayload``
documents (in ``FfiSourceEvent``) and ``BootstrapEventPayload`` documents (in
``FfiBootstrapEvent``), and takes query results as MessagePack ``QueryResult``
documents (in ``FfiQueryResult``).  This module decodes the first two and
encodes the third (and, for tests, bridges and host-built providers, the
reverse of each), with ``msgspec``.

Decoded form
------------
Small frozen ``msgspec.Struct`` classes of this module, shaped like the
public data model so that mapping them onto it is field for field:

* :class:`SourceEventPayload` / :class:`BootstrapEventPayload` carry the
  envelope fields, plus ``change`` (a :class:`Change`) *or* ``control`` (a
  :class:`Control`), never both.  ``op``, ``label`` and ``entity_id`` give the
  routing hints the 0.4 event carried (``op`` is ``UPDATE`` for a ``Future``
  change and every control event, as the plugin's own hint is).
* :class:`Change` is ``(op: ChangeOp, element: Element)``.  An
  ``Insert``/``Update`` carries a full element; a ``Delete`` carries only the
  metadata: ``Element(type=None, properties={}, in_node=None, out_node=None)``.
* :class:`Element` mirrors ``models.Element`` (``type`` ``"node"`` /
  ``"relation"``; ``labels`` a tuple; ``effective_from`` milliseconds).
* Property values: ``Null`` -> ``None``, ``Bool`` -> ``bool``, ``Integer`` ->
  ``int``, ``Float`` -> ``float`` (kept a float even when integral),
  ``String`` -> ``str``, ``List`` -> ``list``, ``Object`` -> ``dict`` (the
  ``{"values": ...}`` level removed), ``LocalDateTime`` -> naive
  ``datetime``, ``ZonedDateTime`` -> aware ``datetime`` with its offset.
* :class:`Control` is ``(kind, data)``: ``kind`` ``"Future"`` (``data`` =
  ``element_ref`` as an :class:`ElementReference`, ``original_time``,
  ``due_time``, ``group_signature``), ``"FuturesDue"`` (``data`` = ``{}``) or
  ``"Subscription"`` (``query_id``, ``query_node_id``, ``node_labels`` and
  ``rel_labels`` as tuples, ``operation`` ``"Insert"``/``"Update"``/
  ``"Delete"``).
* :class:`QueryResult` / :class:`ResultDiff` mirror ``models.QueryResult`` /
  ``models.ResultDiff`` plus the 0.13 fields ``sequence``, ``row_signature``
  and ``profiling``; result values are plain JSON-like Python values.

Routing without decoding
------------------------
:func:`peek_source_event` / :func:`peek_bootstrap_event` return only the
routing hints (:class:`EventHints`: source id, op, first label, element id,
timestamp, sequence) through a typed msgspec decode that skips the element
properties, falling back to the full decode for any other form; a host can
route with them and decode ``change`` lazily.

Strictness
----------
Every document is checked as the Rust decoder checks it, and more: a wrong
type, a missing required field, an unknown variant, an integer outside its
Rust type, a ``bin`` or extension value where none is allowed, a malformed
timestamp, trailing bytes, nesting deeper than :data:`MAX_DEPTH` or a
payload over ``MAX_FFI_PAYLOAD_BYTES`` raise :class:`PayloadFieldError` (a
``PayloadFormatError``) whose message and ``field`` name the offending field
as a path such as ``event.Change.Insert.element.Node.metadata.labels[0]``.
Unknown map keys are ignored and keys may come in any order, as in serde.
Under a ``Float`` tag an integer is accepted and converted (the Rust f64
visitor does the same); under ``Integer`` a float is refused.

Accepted alternatives (ABI-0.13.md section 12.6)
------------------------------------------------
The wire form of section 12 was derived from the serde definitions and the
rmp-serde 1.x encoder, not observed from a Rust producer.  Where another form
is plausible both are accepted on input; the encoders always write the
first:

1. structs as maps keyed by field name *and* as positional arrays (what
   ``rmp_serde::to_vec`` writes); enum variants by name only, as a string
   (unit variants, also ``{name: nil}``) or a one-entry map -- the pre-1.0
   integer-index form is refused, since the variant order is not part of
   the contract;
2. timestamps with ``Z`` *and* ``+00:00`` (chrono before 0.4.41), any
   fraction width of 1 to 9 digits (digits beyond microseconds are
   truncated);
3. ``source_position`` as an array of small integers *and* as ``bin``;
4. and 5. map keys in any order.

Canonical output (what rmp-serde 1.x writes with ``to_vec_named``): maps in
declaration order, property maps sorted by key, the smallest integer forms,
``f64`` always as ``cb``, ``Z`` for a zero offset and 0, 3 or 6 fraction
digits.  Decoding then encoding a canonical document reproduces its bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, NoReturn, TypeAlias

import msgspec

from .errors import PayloadFormatError
from .models import ChangeOp

__all__ = [
    "MAX_DEPTH",
    "MAX_FFI_PAYLOAD_BYTES",
    "BootstrapEventPayload",
    "Change",
    "Control",
    "Element",
    "ElementReference",
    "EventHints",
    "PayloadFieldError",
    "QueryResult",
    "ResultDiff",
    "SourceEventPayload",
    "decode_bootstrap_event",
    "decode_query_result",
    "decode_source_event",
    "encode_bootstrap_event",
    "encode_query_result",
    "encode_source_event",
    "peek_bootstrap_event",
    "peek_source_event",
]

MAX_FFI_PAYLOAD_BYTES = 268_435_456
"""Upstream's ``MAX_FFI_PAYLOAD_BYTES``: larger payloads are refused unread."""

MAX_DEPTH = 200
"""Deepest nesting of property values / result values accepted."""

_I64_MIN, _I64_MAX, _U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


class PayloadFieldError(PayloadFormatError):
    """A 0.13 MessagePack document is malformed at ``field`` (a path such as
    ``results[2].row_signature``; ``""`` for the document itself)."""

    field: str

    def __init__(self, message: str, *, field: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.field = field


# ------------------------------------------------------------ decoded form


class ElementReference(msgspec.Struct, frozen=True):
    """``ElementReference``: the source an element came from and its id there."""

    source_id: str
    element_id: str


class Element(msgspec.Struct, frozen=True):
    """An element as ``models.Element`` holds it; ``type`` is None only for the
    metadata-only element of a ``Delete``."""

    type: Literal["node", "relation"] | None
    reference: ElementReference
    labels: tuple[str, ...]
    effective_from: int
    properties: dict[str, Any]
    in_node: ElementReference | None = None
    out_node: ElementReference | None = None


class Change(msgspec.Struct, frozen=True):
    """An ``Insert``, ``Update`` or ``Delete`` source change."""

    op: ChangeOp
    element: Element


ControlKind = Literal["Future", "FuturesDue", "Subscription"]


class Control(msgspec.Struct, frozen=True):
    """A ``Future`` change or a ``Control`` event, with its decoded fields."""

    kind: ControlKind
    data: dict[str, Any]


class _EventBody(msgspec.Struct, frozen=True):
    source_id: str
    timestamp_us: int
    change: Change | None
    control: Control | None

    @property
    def op(self) -> ChangeOp:
        """The op hint: the change's, ``UPDATE`` for futures and control events."""
        return self.change.op if self.change is not None else ChangeOp.UPDATE

    @property
    def label(self) -> str:
        """The first label of the changed element, or ``""``."""
        if self.change is None or not self.change.element.labels:
            return ""
        return self.change.element.labels[0]

    @property
    def entity_id(self) -> str:
        """The id of the changed (or future-referenced) element, or ``""``."""
        if self.change is not None:
            return self.change.element.reference.element_id
        if self.control is not None and self.control.kind == "Future":
            ref = self.control.data["element_ref"]
            return ref.element_id if isinstance(ref, ElementReference) else ""
        return ""


class SourceEventPayload(_EventBody, frozen=True):
    """``SourceEventPayload`` (section 12.2); ``sequence`` is None for volatile
    sources, ``source_position`` the opaque position bytes or None."""

    sequence: int | None = None
    source_position: bytes | None = None


class BootstrapEventPayload(_EventBody, frozen=True):
    """``BootstrapEventPayload`` (section 12.3)."""

    sequence: int = 0


DiffKind = Literal["ADD", "DELETE", "UPDATE", "aggregation", "noop"]


class ResultDiff(msgspec.Struct, frozen=True):
    """One ``ResultDiff`` (section 12.4); values are JSON-like Python values."""

    type: DiffKind
    data: Any = None
    before: Any = None
    after: Any = None
    grouping_keys: tuple[str, ...] | None = None
    row_signature: int = 0


class QueryResult(msgspec.Struct, frozen=True):
    """``QueryResult`` (section 12.4); ``timestamp`` is aware, in UTC."""

    query_id: str
    timestamp: datetime
    results: list[ResultDiff]
    metadata: dict[str, Any]
    sequence: int = 0
    profiling: dict[str, int | None] | None = None


# ------------------------------------------------------------- primitives

_DECODER = msgspec.msgpack.Decoder()
_ENCODER = msgspec.msgpack.Encoder()
_UNIT = object()  # the body of a unit variant


# A field path is built only as a chain of (parent, key) tuples on the way
# down, and rendered to text only when an error names it.
Path: TypeAlias = "str | tuple[Path, str | int]"


def _join(path: Path, key: str | int) -> Path:
    return (path, key)


def _render(path: Path) -> str:
    keys: list[str | int] = []
    while isinstance(path, tuple):
        path, key = path
        keys.append(key)
    text = path
    for key in reversed(keys):
        text = f"{text}[{key}]" if isinstance(key, int) else (f"{text}.{key}" if text else key)
    return text


def _fail(path: Path, problem: str) -> NoReturn:
    field = _render(path)
    raise PayloadFieldError(f"{field or 'document'}: {problem}", field=field)


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, msgspec.msgpack.Ext):
        return f"ext type {value.code}"
    if isinstance(value, datetime):
        return "timestamp extension"
    return {dict: "map", list: "array", str: "string", bool: "bool", int: "integer"}.get(
        type(value), type(value).__name__
    )


def _str(value: Any, path: Path) -> str:
    if type(value) is not str:
        _fail(path, f"expected a string, got {_kind(value)}")
    return value


def _int(value: Any, path: Path, lo: int, hi: int, what: str) -> int:
    if type(value) is not int:
        _fail(path, f"expected {what}, got {_kind(value)}")
    if not lo <= value <= hi:
        _fail(path, f"{value} is out of range for {what}")
    return value


def _u64(value: Any, path: Path) -> int:
    return _int(value, path, 0, _U64_MAX, "a u64")


def _i64(value: Any, path: Path) -> int:
    return _int(value, path, _I64_MIN, _I64_MAX, "an i64")


def _labels(value: Any, path: Path) -> tuple[str, ...]:
    if type(value) is not list:
        _fail(path, f"expected an array of strings, got {_kind(value)}")
    return tuple(_str(v, _join(path, i)) for i, v in enumerate(value))


def _fields(value: Any, path: Path, names: tuple[str, ...], required: int, what: str) -> list[Any]:
    """The fields of a struct, from its map or positional-array form.

    The first ``required`` names must be present; missing later ones are
    None (serde's ``Option`` / ``#[serde(default)]``).  Unknown keys (also
    non-string ones) are ignored."""
    if type(value) is dict:
        try:
            return [value[name] for name in names]
        except KeyError:
            pass
        out = []
        for i, name in enumerate(names):
            if name in value:
                out.append(value[name])
            elif i < required:
                _fail(path, f"{what} is missing the field {name!r}")
            else:
                out.append(None)
        return out
    if type(value) is list:
        if not required <= len(value) <= len(names):
            _fail(
                path,
                f"{what} as an array needs {required} to {len(names)} elements, got {len(value)}",
            )
        return [*value, *([None] * (len(names) - len(value)))]
    _fail(path, f"expected {what} (a map), got {_kind(value)}")


def _variant(value: Any, path: Path, names: Iterable[str], what: str) -> tuple[str, Any]:
    """``(name, body)`` of an externally tagged enum value; ``body`` is
    ``_UNIT`` for a bare-string unit variant."""
    if type(value) is str:
        name, body = value, _UNIT
    elif type(value) is dict:
        if len(value) != 1:
            _fail(path, f"{what} must be a map with one entry, got {len(value)}")
        ((name, body),) = value.items()
        if type(name) is not str:
            _fail(path, f"{what} variant must be named by a string, got {_kind(name)}")
    else:
        _fail(path, f"expected {what} (a string or a one-entry map), got {_kind(value)}")
    if name not in names:
        _fail(path, f"unknown {what} variant {name!r} (expected one of {', '.join(names)})")
    return name, body


def _unit(body: Any, path: Path, name: str) -> None:
    if body is not _UNIT and body is not None:
        _fail(_join(path, name), f"unit variant {name!r} carries a value ({_kind(body)})")


def _body(body: Any, path: Path, name: str) -> Any:
    if body is _UNIT:
        _fail(path, f"variant {name!r} needs a value")
    return body


# ------------------------------------------------------------- timestamps

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)


def _parse_datetime(value: Any, path: Path, *, zoned: bool) -> datetime:
    text = _str(value, path)
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        _fail(path, f"not an RFC 3339 date-time: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if zoned and offset is None:
        _fail(path, f"date-time without an offset: {text!r}")
    if not zoned and offset is not None:
        _fail(path, f"local date-time with an offset: {text!r}")
    tz: timezone | None = None
    if offset is not None:
        if offset in ("Z", "z"):
            tz = timezone.utc
        else:
            sign = -1 if offset[0] == "-" else 1
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if hours > 23 or minutes > 59:
                _fail(path, f"bad offset in {text!r}")
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    micro = int((fraction or "").ljust(6, "0")[:6])
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz
        )
    except ValueError as exc:
        _fail(path, f"invalid date-time {text!r}: {exc}")


def _format_fraction(dt: datetime) -> str:
    micro = dt.microsecond
    if micro == 0:
        return ""
    if micro % 1000 == 0:
        return f".{micro // 1000:03d}"
    return f".{micro:06d}"


def _format_local(dt: datetime) -> str:
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{_format_fraction(dt)}"
    )


def _format_offset(delta: timedelta, path: Path) -> str:
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "Z"
    if seconds % 60 or delta.microseconds:
        _fail(path, "offsets must be whole minutes")
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _format_zoned(dt: datetime, path: Path) -> str:
    offset = dt.utcoffset()
    if offset is None:
        _fail(path, "a zoned date-time needs an aware datetime")
    return _format_local(dt) + _format_offset(offset, path)


def _format_utc(dt: datetime, path: Path) -> str:
    if dt.tzinfo is None or dt.utcoffset() is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return _format_zoned(dt.astimezone(timezone.utc), path)


# ------------------------------------------------------ decoding: elements

_VALUE_VARIANTS = (
    "Null",
    "Bool",
    "Float",
    "Integer",
    "String",
    "List",
    "Object",
    "LocalDateTime",
    "ZonedDateTime",
)


def _element_value(value: Any, path: Path, depth: int) -> Any:
    # Fast path for the common scalar variants; everything else (and every
    # error) goes through the general code below.
    if type(value) is dict and len(value) == 1:
        ((name, body),) = value.items()
        kind = type(body)
        if name == "Integer":
            if kind is int and _I64_MIN <= body <= _I64_MAX:
                return body
        elif name == "String":
            if kind is str:
                return body
        elif name == "Float":
            if kind is float:
                return body
        elif name == "Bool":
            if kind is bool:
                return body
        elif name == "List":
            if kind is list and depth < MAX_DEPTH:
                inner = (path, "List")
                return [_element_value(v, (inner, i), depth + 1) for i, v in enumerate(body)]
        elif name == "Object":
            if depth < MAX_DEPTH:
                return _property_map(body, (path, "Object"), depth + 1)
        elif name == "LocalDateTime" or name == "ZonedDateTime":
            return _parse_datetime(body, (path, name), zoned=name == "ZonedDateTime")
    elif value == "Null" and type(value) is str:
        return None
    return _element_value_slow(value, path, depth)


def _element_value_slow(value: Any, path: Path, depth: int) -> Any:
    if depth > MAX_DEPTH:
        _fail(path, f"values nested deeper than {MAX_DEPTH} levels")
    name, body = _variant(value, path, _VALUE_VARIANTS, "ElementValue")
    if name == "Null":
        _unit(body, path, name)
        return None
    inner = _join(path, name)
    body = _body(body, path, name)
    if name == "Integer":
        return _i64(body, inner)
    if name == "String":
        return _str(body, inner)
    if name == "Float":
        if type(body) is float:
            return body
        if type(body) is int:
            return float(body)
        _fail(inner, f"expected a float, got {_kind(body)}")
    if name == "Bool":
        if type(body) is not bool:
            _fail(inner, f"expected a bool, got {_kind(body)}")
        return body
    if name == "List":
        if type(body) is not list:
            _fail(inner, f"expected an array, got {_kind(body)}")
        return [_element_value(v, (inner, i), depth + 1) for i, v in enumerate(body)]
    if name == "Object":
        return _property_map(body, inner, depth + 1)
    return _parse_datetime(body, inner, zoned=name == "ZonedDateTime")


def _property_map(value: Any, path: Path, depth: int = 0) -> dict[str, Any]:
    if type(value) is dict and "values" in value:
        values = value["values"]
    else:
        (values,) = _fields(value, path, ("values",), 1, "ElementPropertyMap")
    inner = (path, "values")
    if type(values) is not dict:
        _fail(inner, f"expected a map, got {_kind(values)}")
    out: dict[str, Any] = {}
    for key, item in values.items():
        if type(key) is not str:
            _fail(inner, f"property name must be a string, got {_kind(key)}")
        out[key] = _element_value(item, (inner, key), depth)
    return out


def _reference(value: Any, path: Path) -> ElementReference:
    if type(value) is dict:
        source_id = value.get("source_id")
        element_id = value.get("element_id")
        if type(source_id) is str and type(element_id) is str:
            return ElementReference(source_id, element_id)
    source_id, element_id = _fields(value, path, ("source_id", "element_id"), 2, "ElementReference")
    return ElementReference(
        _str(source_id, _join(path, "source_id")), _str(element_id, _join(path, "element_id"))
    )


def _metadata(value: Any, path: Path) -> tuple[ElementReference, tuple[str, ...], int]:
    reference, labels, effective_from = _fields(
        value, path, ("reference", "labels", "effective_from"), 3, "ElementMetadata"
    )
    return (
        _reference(reference, _join(path, "reference")),
        _labels(labels, _join(path, "labels")),
        _u64(effective_from, _join(path, "effective_from")),
    )


def _element(value: Any, path: Path) -> Element:
    name, body = _variant(value, path, ("Node", "Relation"), "Element")
    inner = _join(path, name)
    body = _body(body, path, name)
    if name == "Node":
        metadata, properties = _fields(body, inner, ("metadata", "properties"), 2, "Node")
        reference, labels, effective_from = _metadata(metadata, _join(inner, "metadata"))
        props = _property_map(properties, _join(inner, "properties"))
        return Element("node", reference, labels, effective_from, props)
    metadata, in_node, out_node, properties = _fields(
        body, inner, ("metadata", "in_node", "out_node", "properties"), 4, "Relation"
    )
    reference, labels, effective_from = _metadata(metadata, _join(inner, "metadata"))
    return Element(
        "relation",
        reference,
        labels,
        effective_from,
        _property_map(properties, _join(inner, "properties")),
        in_node=_reference(in_node, _join(inner, "in_node")),
        out_node=_reference(out_node, _join(inner, "out_node")),
    )


_OPS = {"Insert": ChangeOp.INSERT, "Update": ChangeOp.UPDATE, "Delete": ChangeOp.DELETE}


def _source_change(value: Any, path: Path) -> Change | Control:
    name, body = _variant(value, path, ("Insert", "Update", "Delete", "Future"), "SourceChange")
    inner = _join(path, name)
    body = _body(body, path, name)
    if name in ("Insert", "Update"):
        (element,) = _fields(body, inner, ("element",), 1, name)
        return Change(_OPS[name], _element(element, _join(inner, "element")))
    if name == "Delete":
        (metadata,) = _fields(body, inner, ("metadata",), 1, name)
        reference, labels, effective_from = _metadata(metadata, _join(inner, "metadata"))
        return Change(ChangeOp.DELETE, Element(None, reference, labels, effective_from, {}))
    (future_ref,) = _fields(body, inner, ("future_ref",), 1, name)
    ref_path = _join(inner, "future_ref")
    element_ref, original, due, group = _fields(
        future_ref,
        ref_path,
        ("element_ref", "original_time", "due_time", "group_signature"),
        4,
        "FutureElementRef",
    )
    return Control(
        "Future",
        {
            "element_ref": _reference(element_ref, _join(ref_path, "element_ref")),
            "original_time": _u64(original, _join(ref_path, "original_time")),
            "due_time": _u64(due, _join(ref_path, "due_time")),
            "group_signature": _u64(group, _join(ref_path, "group_signature")),
        },
    )


_SUBSCRIPTION_FIELDS = ("query_id", "query_node_id", "node_labels", "rel_labels", "operation")


def _control(value: Any, path: Path) -> Control:
    name, body = _variant(value, path, ("FuturesDue", "Subscription"), "SourceControl")
    if name == "FuturesDue":
        _unit(body, path, name)
        return Control("FuturesDue", {})
    inner = _join(path, name)
    query_id, node_id, node_labels, rel_labels, operation = _fields(
        _body(body, path, name), inner, _SUBSCRIPTION_FIELDS, 5, "Subscription"
    )
    op_path = _join(inner, "operation")
    op_name, op_body = _variant(operation, op_path, tuple(_OPS), "ControlOperation")
    _unit(op_body, op_path, op_name)
    return Control(
        "Subscription",
        {
            "query_id": _str(query_id, _join(inner, "query_id")),
            "query_node_id": _str(node_id, _join(inner, "query_node_id")),
            "node_labels": _labels(node_labels, _join(inner, "node_labels")),
            "rel_labels": _labels(rel_labels, _join(inner, "rel_labels")),
            "operation": op_name,
        },
    )


def _split(item: Change | Control) -> tuple[Change | None, Control | None]:
    return (item, None) if isinstance(item, Change) else (None, item)


def _position(value: Any, path: Path) -> bytes | None:
    if value is None:
        return None
    if type(value) is bytes:
        return value
    if type(value) is not list:
        _fail(path, f"expected an array of bytes, got {_kind(value)}")
    for i, b in enumerate(value):
        _int(b, _join(path, i), 0, 255, "a byte (u8)")
    return bytes(value)


# -------------------------------------------------------------- documents


def _document(data: bytes | bytearray | memoryview, what: str) -> Any:
    size = len(data) if not isinstance(data, memoryview) else data.nbytes
    if size > MAX_FFI_PAYLOAD_BYTES:
        raise PayloadFieldError(
            f"{what} of {size} bytes exceeds the {MAX_FFI_PAYLOAD_BYTES}-byte limit"
        )
    if size == 0:
        raise PayloadFieldError(f"{what} is empty")
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError, ValueError, TypeError) as exc:
        raise PayloadFieldError(f"{what} is not valid MessagePack: {exc}") from exc


def _with_document(exc: PayloadFieldError, what: str) -> PayloadFieldError:
    return exc.with_context(what)


def decode_source_event(data: bytes | bytearray | memoryview) -> SourceEventPayload:
    """Decode a ``SourceEventPayload`` (the bytes of an ``FfiSourceEvent``)."""
    what = "source event payload"
    doc = _document(data, what)
    try:
        source_id, event, timestamp_us, sequence, position = _fields(
            doc,
            "",
            ("source_id", "event", "timestamp_us", "sequence", "source_position"),
            3,
            "SourceEventPayload",
        )
        name, body = _variant(event, "event", ("Change", "Control"), "SourceEvent")
        inner = _join("event", name)
        body = _body(body, "event", name)
        item = _source_change(body, inner) if name == "Change" else _control(body, inner)
        change, control = _split(item)
        return SourceEventPayload(
            source_id=_str(source_id, "source_id"),
            timestamp_us=_i64(timestamp_us, "timestamp_us"),
            change=change,
            control=control,
            sequence=None if sequence is None else _u64(sequence, "sequence"),
            source_position=_position(position, "source_position"),
        )
    except PayloadFieldError as exc:
        raise _with_document(exc, what) from exc


def decode_bootstrap_event(data: bytes | bytearray | memoryview) -> BootstrapEventPayload:
    """Decode a ``BootstrapEventPayload`` (the bytes of an ``FfiBootstrapEvent``)."""
    what = "bootstrap event payload"
    doc = _document(data, what)
    try:
        source_id, change, timestamp_us, sequence = _fields(
            doc,
            "",
            ("source_id", "change", "timestamp_us", "sequence"),
            4,
            "BootstrapEventPayload",
        )
        item = _source_change(change, "change")
        change_, control = _split(item)
        return BootstrapEventPayload(
            source_id=_str(source_id, "source_id"),
            timestamp_us=_i64(timestamp_us, "timestamp_us"),
            change=change_,
            control=control,
            sequence=_u64(sequence, "sequence"),
        )
    except PayloadFieldError as exc:
        raise _with_document(exc, what) from exc


# ------------------------------------------------------- routing hints


class EventHints(msgspec.Struct, frozen=True):
    """What a host needs to route an event without decoding its properties:
    the 0.4 routing hints, read from a 0.13 payload (see :func:`peek_source_event`)."""

    source_id: str
    op: ChangeOp
    label: str
    entity_id: str
    timestamp_us: int
    sequence: int | None


# Typed shapes of just the routing fields: msgspec skips everything else
# (properties included) without building Python objects for it.
class _HRef(msgspec.Struct):
    source_id: str
    element_id: str


class _HMeta(msgspec.Struct):
    reference: _HRef
    labels: list[str]


class _HElementBody(msgspec.Struct):
    metadata: _HMeta


class _HElement(msgspec.Struct):
    Node: _HElementBody | None = None
    Relation: _HElementBody | None = None


class _HWithElement(msgspec.Struct):
    element: _HElement


class _HFutureRef(msgspec.Struct):
    element_ref: _HRef


class _HFuture(msgspec.Struct):
    future_ref: _HFutureRef


class _HChange(msgspec.Struct):
    Insert: _HWithElement | None = None
    Update: _HWithElement | None = None
    Delete: _HElementBody | None = None
    Future: _HFuture | None = None


class _HEvent(msgspec.Struct):
    Change: _HChange | None = None
    Control: msgspec.Raw | None = None


class _HSource(msgspec.Struct):
    source_id: str
    event: _HEvent
    timestamp_us: int
    sequence: int | None = None


class _HBootstrap(msgspec.Struct):
    source_id: str
    change: _HChange
    timestamp_us: int
    sequence: int


_HSOURCE = msgspec.msgpack.Decoder(_HSource)
_HBOOTSTRAP = msgspec.msgpack.Decoder(_HBootstrap)
_HOPS = {
    "Insert": ChangeOp.INSERT,
    "Update": ChangeOp.UPDATE,
    "Delete": ChangeOp.DELETE,
    "Future": ChangeOp.UPDATE,
}


def _change_hints(change: _HChange) -> tuple[ChangeOp, str, str] | None:
    present = [
        (name, body)
        for name in ("Insert", "Update", "Delete", "Future")
        if (body := getattr(change, name)) is not None
    ]
    if len(present) != 1:
        return None
    name, body = present[0]
    if isinstance(body, _HFuture):
        return ChangeOp.UPDATE, "", body.future_ref.element_ref.element_id
    if isinstance(body, _HWithElement):
        element = body.element
        if (element.Node is None) == (element.Relation is None):
            return None
        meta = (element.Node or element.Relation).metadata  # type: ignore[union-attr]
    else:
        meta = body.metadata
    label = meta.labels[0] if meta.labels else ""
    return _HOPS[name], label, meta.reference.element_id


def _hints_from(payload: SourceEventPayload | BootstrapEventPayload) -> EventHints:
    return EventHints(
        payload.source_id,
        payload.op,
        payload.label,
        payload.entity_id,
        payload.timestamp_us,
        payload.sequence,
    )


def _peek(data: bytes | bytearray | memoryview, bootstrap: bool) -> EventHints | None:
    seq: int | None
    size = len(data) if not isinstance(data, memoryview) else data.nbytes
    if size == 0 or size > MAX_FFI_PAYLOAD_BYTES:
        return None
    try:
        if bootstrap:
            boot = _HBOOTSTRAP.decode(data)
            hints = _change_hints(boot.change)
            source_id, ts, seq = boot.source_id, boot.timestamp_us, boot.sequence
        else:
            doc = _HSOURCE.decode(data)
            event = doc.event
            source_id, ts, seq = doc.source_id, doc.timestamp_us, doc.sequence
            if (event.Change is None) == (event.Control is None):
                return None
            if event.Change is None:
                hints = (ChangeOp.UPDATE, "", "")
            else:
                hints = _change_hints(event.Change)
    except (msgspec.DecodeError, RecursionError, ValueError, TypeError):
        return None
    if hints is None or not _I64_MIN <= ts <= _I64_MAX:
        return None
    op, label, entity_id = hints
    return EventHints(source_id, op, label, entity_id, ts, seq)


def peek_source_event(data: bytes | bytearray | memoryview) -> EventHints:
    """The routing hints of a ``SourceEventPayload``, without decoding its
    element properties (several times cheaper than :func:`decode_source_event`).

    Canonical documents take a typed fast path that checks only the routing
    fields; anything else (the positional form, unusual shapes, errors) is
    decoded fully, so a malformed document raises :class:`PayloadFieldError`
    here as it would there.  A document whose routing fields are sound but
    whose properties are not passes here and fails in the full decode."""
    hints = _peek(data, bootstrap=False)
    return hints if hints is not None else _hints_from(decode_source_event(data))


def peek_bootstrap_event(data: bytes | bytearray | memoryview) -> EventHints:
    """The routing hints of a ``BootstrapEventPayload``; see :func:`peek_source_event`."""
    hints = _peek(data, bootstrap=True)
    return hints if hints is not None else _hints_from(decode_bootstrap_event(data))


# --------------------------------------------------------- result values


def _json_value(value: Any, path: Path, depth: int) -> Any:
    """Check a JSON-like value (nil, bool, i64/u64, float, str, array, map with
    string keys); the same value is returned."""
    kind = type(value)
    if value is None or kind is bool or kind is float or kind is str:
        return value
    if kind is int:
        return _int(value, path, _I64_MIN, _U64_MAX, "an integer fitting i64 or u64")
    if depth > MAX_DEPTH:
        _fail(path, f"values nested deeper than {MAX_DEPTH} levels")
    if kind is list or kind is tuple:
        for i, v in enumerate(value):
            _json_value(v, _join(path, i), depth + 1)
        return value
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str:
                _fail(path, f"map keys must be strings, got {_kind(k)}")
            _json_value(v, _join(path, k), depth + 1)
        return value
    _fail(path, f"not a JSON-like value: {_kind(value)}")


_DIFF_FIELDS: dict[str, tuple[str, ...]] = {
    "ADD": ("data", "row_signature"),
    "DELETE": ("data", "row_signature"),
    "UPDATE": ("data", "before", "after", "grouping_keys", "row_signature"),
    "aggregation": ("before", "after", "row_signature"),
    "noop": (),
}
_DIFF_REQUIRED: dict[str, tuple[str, ...]] = {
    "ADD": ("data",),
    "DELETE": ("data",),
    "UPDATE": ("data", "before", "after"),
    "aggregation": ("after",),
    "noop": (),
}


def _result_diff(value: Any, path: Path) -> ResultDiff:
    if type(value) is not dict:
        _fail(path, f"expected a ResultDiff map, got {_kind(value)}")
    if "type" not in value:
        _fail(path, "ResultDiff is missing the field 'type'")
    kind = value["type"]
    type_path = _join(path, "type")
    if type(kind) is not str or kind not in _DIFF_FIELDS:
        shown = kind if type(kind) is str else _kind(kind)
        _fail(type_path, f"unknown ResultDiff type {shown!r}")
    for key in value:
        if type(key) is not str:
            _fail(path, f"ResultDiff has a non-string key of type {_kind(key)}")
    for name in _DIFF_REQUIRED[kind]:
        if name not in value:
            _fail(path, f"ResultDiff {kind} is missing the field {name!r}")
    fields: dict[str, Any] = {}
    for name in _DIFF_FIELDS[kind]:
        if name not in value:
            continue
        item, item_path = value[name], _join(path, name)
        if name == "row_signature":
            fields[name] = _u64(item, item_path)
        elif name == "grouping_keys":
            fields[name] = None if item is None else _labels(item, item_path)
        else:
            fields[name] = _json_value(item, item_path, 0)
    return ResultDiff(kind, **fields)  # type: ignore[arg-type]


def _profiling(value: Any, path: Path) -> dict[str, int | None] | None:
    if value is None:
        return None
    if type(value) is not dict:
        _fail(path, f"expected a map, got {_kind(value)}")
    out: dict[str, int | None] = {}
    for key, item in value.items():
        key_path = _join(path, _str(key, path))
        out[key] = None if item is None else _u64(item, key_path)
    return out


def decode_query_result(data: bytes | bytearray | memoryview) -> QueryResult:
    """Decode a ``QueryResult`` (the bytes of an ``FfiQueryResult``)."""
    what = "query result payload"
    doc = _document(data, what)
    try:
        if type(doc) is list:
            # positional form: the declaration order of the Rust struct
            query_id, sequence, timestamp, results, metadata, profiling = _fields(
                doc,
                "",
                ("query_id", "sequence", "timestamp", "results", "metadata", "profiling"),
                5,
                "QueryResult",
            )
        else:
            query_id, timestamp, results, metadata, sequence, profiling = _fields(
                doc,
                "",
                ("query_id", "timestamp", "results", "metadata", "sequence", "profiling"),
                4,
                "QueryResult",
            )
        if type(results) is not list:
            _fail("results", f"expected an array, got {_kind(results)}")
        if type(metadata) is not dict:
            _fail("metadata", f"expected a map, got {_kind(metadata)}")
        _json_value(metadata, "metadata", 0)
        return QueryResult(
            query_id=_str(query_id, "query_id"),
            timestamp=_parse_datetime(timestamp, "timestamp", zoned=True).astimezone(timezone.utc),
            results=[_result_diff(r, _join("results", i)) for i, r in enumerate(results)],
            metadata=metadata,
            sequence=0 if sequence is None else _u64(sequence, "sequence"),
            profiling=_profiling(profiling, "profiling"),
        )
    except PayloadFieldError as exc:
        raise _with_document(exc, what) from exc


# ---------------------------------------------------------------- encoding


def _encode_value(value: Any, path: Path, depth: int) -> Any:
    if depth > MAX_DEPTH:
        _fail(path, f"values nested deeper than {MAX_DEPTH} levels")
    kind = type(value)
    if value is None:
        return "Null"
    if kind is bool:
        return {"Bool": value}
    if kind is int:
        return {"Integer": _i64(value, path)}
    if kind is float:
        return {"Float": value}
    if kind is str:
        return {"String": value}
    if kind is list or kind is tuple:
        return {"List": [_encode_value(v, _join(path, i), depth + 1) for i, v in enumerate(value)]}
    if isinstance(value, Mapping):
        return {"Object": _encode_properties(value, path, depth + 1)}
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return {"LocalDateTime": _format_local(value)}
        return {"ZonedDateTime": _format_zoned(value, path)}
    if isinstance(value, int):  # int subclasses such as IntEnum members
        return {"Integer": _i64(int(value), path)}
    if isinstance(value, float):
        return {"Float": float(value)}
    if isinstance(value, str):
        return {"String": str(value)}
    _fail(path, f"cannot encode a {type(value).__name__} as an ElementValue")


def _encode_properties(props: Mapping[str, Any], path: Path, depth: int = 0) -> dict[str, Any]:
    for key in props:
        if type(key) is not str:
            _fail(path, f"property names must be strings, got {type(key).__name__}")
    values = {k: _encode_value(props[k], _join(path, k), depth) for k in sorted(props)}
    return {"values": values}


def _encode_reference(ref: ElementReference, path: Path) -> dict[str, Any]:
    return {
        "source_id": _str(ref.source_id, _join(path, "source_id")),
        "element_id": _str(ref.element_id, _join(path, "element_id")),
    }


def _encode_metadata(element: Element, path: Path) -> dict[str, Any]:
    labels_path = _join(path, "labels")
    return {
        "reference": _encode_reference(element.reference, _join(path, "reference")),
        "labels": [_str(v, _join(labels_path, i)) for i, v in enumerate(element.labels)],
        "effective_from": _u64(element.effective_from, _join(path, "effective_from")),
    }


def _encode_element(element: Element, path: Path) -> dict[str, Any]:
    if element.type not in ("node", "relation"):
        _fail(path, f"element type {element.type!r} is neither 'node' nor 'relation'")
    name = "Node" if element.type == "node" else "Relation"
    inner = _join(path, name)
    body: dict[str, Any] = {"metadata": _encode_metadata(element, _join(inner, "metadata"))}
    if name == "Relation":
        if element.in_node is None or element.out_node is None:
            _fail(inner, "a relation needs in_node and out_node")
        body["in_node"] = _encode_reference(element.in_node, _join(inner, "in_node"))
        body["out_node"] = _encode_reference(element.out_node, _join(inner, "out_node"))
    body["properties"] = _encode_properties(element.properties, _join(inner, "properties"))
    return {name: body}


def _need(data: Mapping[str, Any], key: str, path: Path) -> Any:
    if key not in data:
        _fail(path, f"missing {key!r}")
    return data[key]


def _encode_change(change: Change | None, control: Control | None, path: Path) -> dict[str, Any]:
    if change is not None and control is not None:
        _fail(path, "an event carries a change or a control, not both")
    if change is not None:
        op = ChangeOp(change.op)
        if op == ChangeOp.DELETE:
            meta_path = _join(_join(path, "Delete"), "metadata")
            return {"Delete": {"metadata": _encode_metadata(change.element, meta_path)}}
        name = "Insert" if op == ChangeOp.INSERT else "Update"
        element = _encode_element(change.element, _join(_join(path, name), "element"))
        return {name: {"element": element}}
    if control is not None and control.kind == "Future":
        data, ref_path = control.data, _join(_join(path, "Future"), "future_ref")
        ref = _need(data, "element_ref", ref_path)
        if not isinstance(ref, ElementReference):
            _fail(_join(ref_path, "element_ref"), "expected an ElementReference")
        future: dict[str, Any] = {
            "element_ref": _encode_reference(ref, _join(ref_path, "element_ref"))
        }
        for key in ("original_time", "due_time", "group_signature"):
            future[key] = _u64(_need(data, key, ref_path), _join(ref_path, key))
        return {"Future": {"future_ref": future}}
    _fail(path, "nothing to encode: no change")


def _encode_control(control: Control, path: Path) -> Any:
    if control.kind == "FuturesDue":
        return "FuturesDue"
    if control.kind != "Subscription":
        _fail(path, f"control kind {control.kind!r} is not a SourceControl")
    data, inner = control.data, _join(path, "Subscription")
    out: dict[str, Any] = {}
    for key in _SUBSCRIPTION_FIELDS:
        value, key_path = _need(data, key, inner), _join(inner, key)
        if key in ("node_labels", "rel_labels"):
            out[key] = [_str(v, _join(key_path, i)) for i, v in enumerate(value)]
        elif key == "operation" and value not in _OPS:
            _fail(key_path, f"operation {value!r} is not Insert, Update or Delete")
        else:
            out[key] = _str(value, key_path)
    return {"Subscription": out}


def _encode(doc: Any, what: str) -> bytes:
    try:
        return _ENCODER.encode(doc)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadFieldError(f"{what} cannot be encoded: {exc}") from exc


def encode_source_event(payload: SourceEventPayload) -> bytes:
    """The canonical MessagePack bytes of a ``SourceEventPayload``."""
    what = "source event payload"
    try:
        if payload.control is not None and payload.control.kind != "Future":
            if payload.change is not None:
                _fail("event", "an event carries a change or a control, not both")
            event: Any = {"Control": _encode_control(payload.control, "event.Control")}
        else:
            event = {"Change": _encode_change(payload.change, payload.control, "event.Change")}
        position = payload.source_position
        doc = {
            "source_id": _str(payload.source_id, "source_id"),
            "event": event,
            "timestamp_us": _i64(payload.timestamp_us, "timestamp_us"),
            "sequence": None if payload.sequence is None else _u64(payload.sequence, "sequence"),
            "source_position": None if position is None else list(position),
        }
    except PayloadFieldError as exc:
        raise _with_document(exc, what) from exc
    return _encode(doc, what)


def encode_bootstrap_event(payload: BootstrapEventPayload) -> bytes:
    """The canonical MessagePack bytes of a ``BootstrapEventPayload``."""
    what = "bootstrap event payload"
    try:
        doc = {
            "source_id": _str(payload.source_id, "source_id"),
            "change": _encode_change(payload.change, payload.control, "change"),
            "timestamp_us": _i64(payload.timestamp_us, "timestamp_us"),
            "sequence": _u64(payload.sequence, "sequence"),
        }
    except PayloadFieldError as exc:
        raise _with_document(exc, what) from exc
    return _encode(doc, what)


def _encode_diff(diff: Any, path: Path) -> dict[str, Any]:
    kind = diff.type
    if kind not in _DIFF_FIELDS:
        _fail(_join(path, "type"), f"unknown ResultDiff type {kind!r}")
    out: dict[str, Any] = {"type": kind}
    if kind == "noop":
        return out
    if kind in ("ADD", "DELETE", "UPDATE"):
        out["data"] = _json_value(diff.data, _join(path, "data"), 0)
    if kind in ("UPDATE", "aggregation"):
        out["before"] = _json_value(diff.before, _join(path, "before"), 0)
        out["after"] = _json_value(diff.after, _join(path, "after"), 0)
    keys = getattr(diff, "grouping_keys", None)
    if kind == "UPDATE" and keys is not None:
        key_path = _join(path, "grouping_keys")
        out["grouping_keys"] = [_str(k, _join(key_path, i)) for i, k in enumerate(keys)]
    out["row_signature"] = _u64(getattr(diff, "row_signature", 0), _join(path, "row_signature"))
    return out


def encode_query_result(result: Any, *, sequence: int | None = None) -> bytes:
    """The canonical MessagePack bytes of a ``QueryResult`` for a 0.13 reaction.

    ``result`` is a :class:`QueryResult` of this module or any object with its
    attributes (``models.QueryResult`` qualifies: a missing ``sequence`` or
    ``row_signature`` is 0).  ``sequence`` overrides the result's own.  The
    ``profiling`` member is never written (a host has none to give)."""
    what = "query result payload"
    try:
        seq = getattr(result, "sequence", 0) if sequence is None else sequence
        metadata = result.metadata
        if not isinstance(metadata, Mapping):
            _fail("metadata", f"expected a map, got {type(metadata).__name__}")
        doc = {
            "query_id": _str(result.query_id, "query_id"),
            "sequence": _u64(seq, "sequence"),
            "timestamp": _format_utc(result.timestamp, "timestamp"),
            "results": [_encode_diff(d, _join("results", i)) for i, d in enumerate(result.results)],
            "metadata": _json_value(dict(metadata), "metadata", 0),
        }
    except PayloadFieldError as exc:
        raise _with_document(exc, what) from exc
    return _encode(doc, what)
