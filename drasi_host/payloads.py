"""Payload formats: the documents of ABI.md section 10 and their codecs.

A plugin that exports ``drasi_plugin_payload_format`` names one media type;
:func:`codec_for` maps it to a :class:`PayloadCodec` (None for an
opaque-payload plugin, :class:`PayloadFormatError` for a format this host does
not know).

Both codecs are built on msgspec.  ``decode_change`` and
``decode_query_result`` decode payload bytes straight into the model classes
with a typed decoder, then check in one pass the rules a type cannot express
(a ``delete`` may carry a minimal element; which fields each kind of result
diff has).  Whatever that fast path refuses is decoded once more as a plain
document and checked field by field by :func:`change_from_document` /
:func:`query_result_from_document`, which raise :class:`PluginProtocolError`
naming the field, what was expected and what was found (or accept a document
the fast path is too strict for).  Unknown extra keys are ignored (forward
compatibility).  A ``delete`` may carry only ``type``, ``reference``,
``labels`` and ``effective_from``; missing ``properties`` then decode as
``{}`` and a relation's missing ``in_node``/``out_node`` as None (a ``null``
end of a deleted relation reads as missing).

Encoding writes the model classes directly; the JSON values inside them
(properties, rows, metadata) are checked, so a value no JSON document can
hold (a set, bytes, NaN or an infinity, a non-string key) raises
:class:`PayloadFormatError` instead of being written in some other form.  A
query result in the document's own shape is written by msgspec first and
checked after (a C test of exact JSON types, see ``ffi_build/jsonvalues.c``,
then the Python check for what it is not sure of); its bytes are returned
only when the check passes, else the general path writes or refuses it.

Timestamps of query results are written as RFC 3339 UTC with microseconds and
``Z`` (``2026-11-28T07:30:00.123456Z``); a naive ``datetime`` is treated as
UTC.  Reading accepts any RFC 3339 offset and returns an aware UTC datetime.

Documents are JSON values only (null, booleans, integers, finite floats,
strings, lists, string-keyed objects).  JSON integers of any size are kept
exact; MessagePack cannot carry integers beyond 64 bits and refuses to encode
them.  The JSON decoder refuses ``NaN``, ``Infinity`` and numbers that
overflow a float (``1e999``); the MessagePack codec checks that a decoded
document holds nothing else (no binary, extension types, NaN).
"""

from __future__ import annotations

import abc
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal

import msgspec

from drasi_host._jsonvalues import is_json_value as _is_plain_json
from drasi_host.errors import PayloadFormatError, PluginProtocolError
from drasi_host.models import (
    OP_FROM_WIRE,
    ChangeOp,
    Element,
    ElementReference,
    QueryResult,
    ResultDiff,
    SourceChange,
)

#: The largest payload document accepted from a plugin, in bytes (64 MiB).
#: Receivers reject larger payloads before decoding; the codecs check it too.
MAX_PAYLOAD_SIZE: Final = 64 * 1024 * 1024

JSON_FORMAT: Final = "application/json"
MSGPACK_FORMAT: Final = "application/msgpack"
#: The payload formats this host knows.
SUPPORTED_FORMATS: Final = (JSON_FORMAT, MSGPACK_FORMAT)

_MISSING: Final[Any] = object()
_UNSET: Final[Any] = msgspec.UNSET
_OP_TO_WIRE: Final[dict[ChangeOp, Any]] = {op: name for name, op in OP_FROM_WIRE.items()}
# Errors the encoders raise for values a format cannot hold.
_ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError, RecursionError)
_U64_LIMIT: Final = 1 << 64
_force_setattr: Final = msgspec.structs.force_setattr


# ------------------------------------------------------------------ errors


def _describe(value: Any) -> str:
    if value is _MISSING:
        return "nothing (the field is missing)"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _invalid(document: str, field: str, expected: str, found: Any) -> PluginProtocolError:
    return PluginProtocolError(
        f"invalid {document} document: {field} must be {expected}, found {_describe(found)}"
    )


def _too_large(size: int) -> PluginProtocolError:
    return PluginProtocolError(
        f"payload of {size} bytes exceeds the limit of {MAX_PAYLOAD_SIZE} bytes"
    )


# ----------------------------------------------------------- source changes


def _reference(value: Any, field: str) -> ElementReference:
    if type(value) is dict:
        source_id = value.get("source_id", _MISSING)
        element_id = value.get("element_id", _MISSING)
        if type(source_id) is str and type(element_id) is str:
            return ElementReference(source_id, element_id)
        if type(source_id) is not str:
            raise _invalid("change", f"{field}.source_id", "a string", source_id)
        raise _invalid("change", f"{field}.element_id", "a string", element_id)
    raise _invalid("change", field, "an object", value)


def change_from_document(document: Any) -> SourceChange:
    """The :class:`SourceChange` a decoded change document describes;
    :class:`PluginProtocolError` if it is malformed."""
    if type(document) is not dict:
        raise _invalid("change", "the document", "an object", document)
    wire_op = document.get("op", _MISSING)
    op = OP_FROM_WIRE.get(wire_op) if type(wire_op) is str else None
    if op is None:
        raise _invalid("change", "op", "'insert', 'update' or 'delete'", wire_op)
    element = document.get("element", _MISSING)
    if type(element) is not dict:
        raise _invalid("change", "element", "an object", element)

    element_type = element.get("type", _MISSING)
    if element_type != "node" and element_type != "relation":
        raise _invalid("change", "element.type", "'node' or 'relation'", element_type)
    reference = _reference(element.get("reference", _MISSING), "element.reference")
    labels = element.get("labels", _MISSING)
    if type(labels) is not list:
        raise _invalid("change", "element.labels", "a list of strings", labels)
    for label in labels:
        if type(label) is not str:
            raise _invalid("change", "element.labels", "a list of strings", labels)
    effective_from = element.get("effective_from", _MISSING)
    if type(effective_from) is not int or not 0 <= effective_from < _U64_LIMIT:
        raise _invalid(
            "change",
            "element.effective_from",
            "an unsigned 64-bit integer (milliseconds since the Unix epoch)",
            effective_from,
        )
    properties = element.get("properties", _MISSING)
    if type(properties) is not dict:
        if properties is _MISSING and op is ChangeOp.DELETE:
            properties = {}
        else:
            raise _invalid("change", "element.properties", "an object", properties)

    in_node = out_node = None
    if element_type == "relation":
        raw_in = element.get("in_node", _MISSING)
        raw_out = element.get("out_node", _MISSING)
        if op is not ChangeOp.DELETE or raw_in is not _MISSING or raw_out is not _MISSING:
            in_node = _reference(raw_in, "element.in_node")
            out_node = _reference(raw_out, "element.out_node")
    return SourceChange(
        op,
        Element(element_type, reference, labels, effective_from, properties, in_node, out_node),
    )


def _reference_document(reference: ElementReference) -> dict[str, str]:
    return {"source_id": reference.source_id, "element_id": reference.element_id}


def change_to_document(change: SourceChange) -> dict[str, Any]:
    """The change document (ABI.md section 10) for ``change``."""
    element = change.element
    reference = element.reference
    body: dict[str, Any] = {
        "type": element.type,
        "reference": {"source_id": reference.source_id, "element_id": reference.element_id},
        "labels": element.labels,
        "effective_from": element.effective_from,
        "properties": element.properties,
    }
    if element.in_node is not None:
        body["in_node"] = _reference_document(element.in_node)
    if element.out_node is not None:
        body["out_node"] = _reference_document(element.out_node)
    return {"op": _OP_TO_WIRE[change.op], "element": body}


# ---------------------------------------------------------------- timestamps

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)


_encode_json: Final = msgspec.json.Encoder().encode


def format_timestamp(value: datetime) -> str:
    """``value`` as RFC 3339 UTC with microseconds and ``Z``; a naive datetime
    is taken to be UTC."""
    if value.tzinfo is timezone.utc and value.microsecond:
        # msgspec writes exactly this form (in C) when there are microseconds
        return _encode_json(value)[1:-1].decode("ascii")
    offset = value.utcoffset()
    if offset is None:
        return value.isoformat(timespec="microseconds") + "Z"
    if offset:
        return (value - offset).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime (digits beyond
    microseconds are dropped, a leap second becomes its last microsecond);
    ``ValueError`` if ``text`` is not one."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, sign, offset_hours, offset_minutes = match.groups()[6:]
    micro = int((fraction + "00000")[:6]) if fraction else 0
    if second == 60:
        second, micro = 59, 999_999
    value = datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone.utc)
    if sign:
        offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
        value = value - offset if sign == "+" else value + offset
    return value


# ------------------------------------------------------------- query results


def _diff_to_document(diff: ResultDiff) -> dict[str, Any]:
    kind = diff.type
    if kind == "ADD" or kind == "DELETE":
        return {"type": kind, "data": diff.data}
    if kind == "UPDATE":
        document: dict[str, Any] = {
            "type": kind,
            "data": diff.data,
            "before": diff.before,
            "after": diff.after,
        }
        if diff.grouping_keys is not None:
            document["grouping_keys"] = diff.grouping_keys
        return document
    if kind == "aggregation":
        return {"type": kind, "before": diff.before, "after": diff.after}
    return {"type": "noop"}


def query_result_to_document(result: QueryResult) -> dict[str, Any]:
    """The query result document (ABI.md section 10) for ``result``."""
    return {
        "query_id": result.query_id,
        "timestamp": format_timestamp(result.timestamp),
        "results": [_diff_to_document(diff) for diff in result.results],
        "metadata": result.metadata,
    }


def _object_field(value: dict[str, Any], key: str, field: str, nullable: bool = False) -> Any:
    found = value.get(key, _MISSING)
    if type(found) is dict or (nullable and found is None):
        return found
    if nullable and found is _MISSING:
        return None
    expected = "an object or null" if nullable else "an object"
    raise _invalid("query result", f"{field}.{key}", expected, found)


def _diff_from_document(value: Any, field: str) -> ResultDiff:
    if type(value) is not dict:
        raise _invalid("query result", field, "an object", value)
    kind = value.get("type", _MISSING)
    if kind == "ADD":
        return ResultDiff.add(_object_field(value, "data", field))
    if kind == "DELETE":
        return ResultDiff.delete(_object_field(value, "data", field))
    if kind == "UPDATE":
        keys = value.get("grouping_keys")
        if keys is not None and (
            type(keys) is not list or any(type(key) is not str for key in keys)
        ):
            raise _invalid(
                "query result", f"{field}.grouping_keys", "a list of strings or null", keys
            )
        return ResultDiff.update(
            _object_field(value, "data", field),
            _object_field(value, "before", field),
            _object_field(value, "after", field),
            keys,
        )
    if kind == "aggregation":
        return ResultDiff.aggregation(
            _object_field(value, "before", field, nullable=True),
            _object_field(value, "after", field),
        )
    if kind == "noop":
        return ResultDiff.noop()
    raise _invalid(
        "query result",
        f"{field}.type",
        "'ADD', 'DELETE', 'UPDATE', 'aggregation' or 'noop'",
        kind,
    )


def query_result_from_document(document: Any) -> QueryResult:
    """The :class:`QueryResult` a decoded query result document describes;
    :class:`PluginProtocolError` if it is malformed.  ``metadata`` may be
    missing (``{}``)."""
    if type(document) is not dict:
        raise _invalid("query result", "the document", "an object", document)
    query_id = document.get("query_id", _MISSING)
    if type(query_id) is not str:
        raise _invalid("query result", "query_id", "a string", query_id)
    stamp = document.get("timestamp", _MISSING)
    try:
        if type(stamp) is not str:
            raise ValueError
        timestamp = parse_timestamp(stamp)
    except ValueError:
        raise _invalid("query result", "timestamp", "an RFC 3339 timestamp", stamp) from None
    results = document.get("results", _MISSING)
    if type(results) is not list:
        raise _invalid("query result", "results", "a list", results)
    diffs = [_diff_from_document(item, f"results[{i}]") for i, item in enumerate(results)]
    metadata = document.get("metadata", _MISSING)
    if metadata is _MISSING:
        metadata = {}
    elif type(metadata) is not dict:
        raise _invalid("query result", "metadata", "an object", metadata)
    return QueryResult(query_id, timestamp, diffs, metadata)


# ------------------------------------------------------------- JSON values

_JSON_SCALARS: Final = frozenset({str, int, bool, type(None)})


def _is_json_value(value: Any) -> bool:
    """Whether ``value`` is a JSON value as decoded (string keys, lists,
    finite floats)."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (type(item) in _JSON_SCALARS or _is_json_value(item)):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110 - a loop is faster than all() over a generator
            if not (type(item) in _JSON_SCALARS or _is_json_value(item)):
                return False
        return True
    if kind is float:
        return math.isfinite(value)
    return False


def _non_json_error(value: Any, path: str) -> PluginProtocolError | None:
    """The error describing the first non-JSON part of ``value`` (slow path
    of :func:`_is_json_value`)."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return PluginProtocolError(
                    f"invalid payload: {path} has the key {_describe(key)}, not a string"
                )
            error = _non_json_error(item, f"{path}.{key}")
            if error is not None:
                return error
        return None
    if kind is list:
        for index, item in enumerate(value):
            error = _non_json_error(item, f"{path}[{index}]")
            if error is not None:
                return error
        return None
    if _is_json_value(value):
        return None
    return PluginProtocolError(f"invalid payload: {path} is {_describe(value)}, not a JSON value")


_ENCODABLE_SCALARS: Final = frozenset({str, int, bool, type(None)})
_ENCODABLE_ARRAYS: Final = frozenset({list, tuple})


def _is_encodable(value: Any) -> bool:
    """Whether ``value`` can be written as a JSON value: like
    :func:`_is_json_value`, and tuples count as lists."""
    kind = type(value)
    if kind in _ENCODABLE_SCALARS:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (
                type(item) in _ENCODABLE_SCALARS or _is_encodable(item)
            ):
                return False
        return True
    if kind in _ENCODABLE_ARRAYS:
        for item in value:  # noqa: SIM110 - a loop is faster than all() over a generator
            if not (type(item) in _ENCODABLE_SCALARS or _is_encodable(item)):
                return False
        return True
    if kind is float:
        return math.isfinite(value)
    return _is_encodable_subclass(value)


def _is_encodable_subclass(value: Any) -> bool:
    """Instances of subclasses of the JSON types (an ``IntEnum``, an
    ``OrderedDict``) are written as their base type."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (str, int)):
        return True
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_encodable(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_encodable(item) for item in value)
    return False


def _require_encodable(value: Any, what: str) -> None:
    """``ValueError`` (NaN, infinities) or ``TypeError`` (anything else) when
    ``value`` is not a JSON value; the message names where in ``what``."""
    if _is_encodable(value):
        return
    path, bad, is_key = _first_unencodable(value, what)
    if is_key:
        raise TypeError(f"{path} has the key {_describe(bad)}; keys must be strings")
    if isinstance(bad, float):
        raise ValueError(f"{path} is the float {bad!r}; NaN and infinities are not JSON")
    raise TypeError(f"{path} is {_describe(bad)}, which is not a JSON value")


def _first_unencodable(value: Any, path: str) -> tuple[str, Any, bool]:
    """(where, what, whether it is a key) of the first part of ``value``
    that is not a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return path, key, True
            if not _is_encodable(item):
                return _first_unencodable(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if not _is_encodable(item):
                return _first_unencodable(item, f"{path}[{index}]")
    return path, value, False


# -------------------------------------------------------- typed wire forms


WireOp = Literal["insert", "update", "delete"]


class _ChangeWire(msgspec.Struct, gc=False):
    """The change document as the typed decoders read it and the encoders
    write it: the operation by its wire name, the element as it is."""

    op: WireOp
    element: Element


class _QueryResultWire(msgspec.Struct, gc=False):
    """The query result document as the typed decoders read it."""

    query_id: str
    timestamp: str
    results: list[ResultDiff]
    metadata: dict[str, Any] = _UNSET


class _QueryResultOut(msgspec.Struct, gc=False):
    """The query result document as the encoders write it (each diff is a
    :class:`ResultDiff` or, for shapes its defaults cannot express, a dict)."""

    query_id: str
    timestamp: str
    results: list[Any]
    metadata: dict[str, Any]


def _change_from_wire(wire: _ChangeWire, check_values: bool) -> SourceChange | None:
    """The change a typed decoder produced, once the rules a type cannot
    express hold; None when they do not (the caller then checks the document
    field by field).  ``check_values``: also check that the properties are
    JSON values (MessagePack can carry more)."""
    op = OP_FROM_WIRE[wire.op]
    element = wire.element
    if element.effective_from >= _U64_LIMIT or element.type is None:
        return None
    if element.properties is _UNSET:
        if op is not ChangeOp.DELETE:
            return None
        _force_setattr(element, "properties", {})
    elif check_values and not _is_json_value(element.properties):
        return None
    in_node = element.in_node
    out_node = element.out_node
    if element.type == "relation":
        if (in_node is None or out_node is None) and (
            op is not ChangeOp.DELETE or in_node is not None or out_node is not None
        ):
            return None
    elif in_node is not None or out_node is not None:
        return None  # a node's relation ends are ignored: let the slow path drop them
    return SourceChange(op, element)


def _diff_is_canonical(diff: ResultDiff) -> bool:
    """Whether ``diff`` has exactly the fields its kind has in a document."""
    kind = diff.type
    if kind == "ADD" or kind == "DELETE":
        return (
            diff.data is not None
            and diff.before is None
            and diff.after is None
            and diff.grouping_keys is None
        )
    if kind == "UPDATE":
        return diff.data is not None and diff.before is not None and diff.after is not None
    if kind == "aggregation":
        return diff.after is not None and diff.data is None and diff.grouping_keys is None
    return (
        diff.data is None
        and diff.before is None
        and diff.after is None
        and diff.grouping_keys is None
    )


def _diffs_are_json(results: list[ResultDiff]) -> bool:
    for diff in results:
        for value in (diff.data, diff.before, diff.after):
            if value is not None and not _is_json_value(value):
                return False
    return True


_UTC: Final = timezone.utc


def _fast_timestamp(text: str) -> datetime:
    """``parse_timestamp`` with a shortcut for the form this host writes
    (``2026-11-28T07:30:00.123456Z``)."""
    if (
        len(text) == 27
        and text[26] in "Zz"
        and text[10] in "Tt"
        and text[19] == "."
        and text.isascii()
        and text[:4].isdigit()
        and text[20:26].isdigit()
    ):
        try:
            return datetime.fromisoformat(text[:10] + "T" + text[11:26]).replace(tzinfo=_UTC)
        except ValueError:
            pass
    return parse_timestamp(text)


def _query_result_from_wire(wire: _QueryResultWire, check_values: bool) -> QueryResult | None:
    """Like :func:`_change_from_wire`, for query results."""
    results = wire.results
    for diff in results:
        if not _diff_is_canonical(diff):
            return None
    metadata = wire.metadata
    if metadata is _UNSET:
        metadata = {}
    elif check_values and not _is_json_value(metadata):
        return None
    if check_values and not _diffs_are_json(results):
        return None
    try:
        timestamp = _fast_timestamp(wire.timestamp)
    except ValueError:
        return None
    return QueryResult(wire.query_id, timestamp, results, metadata)


def _writes_as_is(result: QueryResult) -> bool:
    """Whether ``result`` itself, written field by field, is its query result
    document: a plain :class:`QueryResult` whose timestamp is an aware UTC
    ``datetime`` with microseconds (written ``...T07:30:00.123456Z``), whose
    diffs have exactly their kind's fields (an aggregation's ``before`` set)
    and whose values are all JSON values (the C test of exact built-in types
    first, :func:`_is_encodable` when it is not sure).  Anything else (and
    every error) takes the general path."""
    if type(result) is not QueryResult:
        return False
    timestamp = result.timestamp
    if timestamp.__class__ is not datetime or timestamp.tzinfo is not _UTC:
        return False
    if not timestamp.microsecond:
        return False
    metadata = result.metadata
    if metadata and not (_is_plain_json(metadata) or _is_encodable(metadata)):
        return False
    for diff in result.results:
        if diff.__class__ is not ResultDiff:
            return False
        kind = diff.type
        data = diff.data
        if kind == "ADD" or kind == "DELETE":
            if (
                data is None
                or diff.before is not None
                or diff.after is not None
                or diff.grouping_keys is not None
                or not (_is_plain_json(data) or _is_encodable(data))
            ):
                return False
        elif kind == "noop":
            if not _diff_is_canonical(diff):
                return False
        else:  # UPDATE, aggregation
            before = diff.before
            after = diff.after
            if (
                before is None
                or not _diff_is_canonical(diff)
                or not (_is_plain_json(before) or _is_encodable(before))
                or not (_is_plain_json(after) or _is_encodable(after))
                or (data is not None and not (_is_plain_json(data) or _is_encodable(data)))
            ):
                return False
    return True


def _diff_out(diff: ResultDiff, index: int) -> Any:
    """What the encoders write for ``diff``: the diff itself when its fields
    give the document shape, else the document as a dict."""
    for name, value in (("data", diff.data), ("before", diff.before), ("after", diff.after)):
        if value is not None:
            _require_encodable(value, f"results[{index}].{name}")
    if diff.type == "aggregation" and diff.before is None:
        return {"type": "aggregation", "before": None, "after": diff.after}
    if _diff_is_canonical(diff):
        return diff
    return _diff_to_document(diff)


# -------------------------------------------------------------------- codecs


class PayloadCodec(abc.ABC):
    """One payload format.  Subclasses set ``media_type`` and implement
    :meth:`load_document` and :meth:`dump_document`; the built-in codecs also
    set ``_encode`` (an msgspec encoder's ``encode``, which writes the model
    classes directly) and the typed decoders ``_change_decoder`` /
    ``_result_decoder``.  A codec without them decodes through
    :meth:`load_document` and encodes the documents of
    :func:`change_to_document` / :func:`query_result_to_document`."""

    media_type: str
    #: Whether decoded documents may hold non-JSON values (checked then).
    _check_values: bool = False
    #: Whether ``_encode`` writes a :class:`QueryResult` that
    #: :func:`_writes_as_is` accepts exactly as its document (JSON does:
    #: msgspec writes such a timestamp in the document's form).
    _encode_result_directly: bool = False
    _encode: Any = None
    _change_decoder: Any = None
    _result_decoder: Any = None

    @abc.abstractmethod
    def load_document(self, data: bytes) -> Any:
        """Parse ``data`` into a document; :class:`PluginProtocolError` when
        it is too large or not valid in this format."""

    @abc.abstractmethod
    def dump_document(self, document: Any) -> bytes:
        """Serialise ``document``; raises ``TypeError``/``ValueError``/
        ``OverflowError`` for values the format cannot hold."""

    def decode_change(self, data: bytes) -> SourceChange:
        """A change payload as a :class:`SourceChange`;
        :class:`PluginProtocolError` naming the field when it is malformed."""
        if len(data) > MAX_PAYLOAD_SIZE:
            raise _too_large(len(data))
        decoder = self._change_decoder
        if decoder is not None:
            try:
                change = _change_from_wire(decoder.decode(data), self._check_values)
            except (msgspec.DecodeError, RecursionError):
                change = None
            if change is not None:
                return change
        return change_from_document(self.load_document(data))

    def encode_change(self, change: SourceChange) -> bytes:
        """``change`` as a change payload."""
        element = change.element
        if element.type is None:
            raise PayloadFormatError(
                f"change of element {element.reference.element_id!r} cannot be encoded as "
                f"{self.media_type}: its element has no type (an FFI 0.13 delete "
                "carries only the metadata)"
            )
        try:
            if self._encode is None:
                return self.dump_document(change_to_document(change))
            _require_encodable(element.properties, "element.properties")
            return self._encode(_ChangeWire(_OP_TO_WIRE[change.op], element))  # type: ignore[no-any-return]
        except _ENCODE_ERRORS as exc:
            raise PayloadFormatError(
                f"change of element {element.reference.element_id!r} cannot be "
                f"encoded as {self.media_type}: {exc}"
            ) from exc

    def encode_query_result(self, result: QueryResult) -> bytes:
        """``result`` as a query result payload."""
        if self._encode_result_directly:
            # Encode first, check after: the check then reads what encoding
            # has just brought into the cache.  Bytes of a result that is not
            # its own document, or that the encoder refuses, are dropped and
            # the general path below decides.
            try:
                data: bytes = self._encode(result)
            except Exception:  # whatever it was, the general path decides
                pass
            else:
                if _writes_as_is(result):
                    return data
        try:
            if self._encode is None:
                return self.dump_document(query_result_to_document(result))
            _require_encodable(result.metadata, "metadata")
            document = _QueryResultOut(
                result.query_id,
                format_timestamp(result.timestamp),
                [_diff_out(diff, i) for i, diff in enumerate(result.results)],
                result.metadata,
            )
            return self._encode(document)  # type: ignore[no-any-return]
        except _ENCODE_ERRORS as exc:
            raise PayloadFormatError(
                f"query result of query {result.query_id!r} cannot be encoded as "
                f"{self.media_type}: {exc}"
            ) from exc

    def decode_query_result(self, data: bytes) -> QueryResult:
        """A query result payload as a :class:`QueryResult`;
        :class:`PluginProtocolError` naming the field when it is malformed."""
        if len(data) > MAX_PAYLOAD_SIZE:
            raise _too_large(len(data))
        decoder = self._result_decoder
        if decoder is not None:
            try:
                result = _query_result_from_wire(decoder.decode(data), self._check_values)
            except (msgspec.DecodeError, RecursionError):
                result = None
            if result is not None:
                return result
        return query_result_from_document(self.load_document(data))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.media_type!r})"


_NON_NUMBERS: Final = (b"NaN", b"Infinity", b"-Infinity")
_BYTE_POSITION: Final = re.compile(r"\(byte (\d+)\)")


def _json_error_detail(data: bytes, exc: Exception) -> str:
    """What is wrong with JSON text msgspec refused, in words."""
    try:
        str(data, "utf-8")
    except UnicodeDecodeError as utf8_error:
        return f"not utf-8: {utf8_error}"
    text = str(exc)
    match = _BYTE_POSITION.search(text)
    if match is not None:
        rest = data[int(match.group(1)) :]
        for name in _NON_NUMBERS:
            if rest.startswith(name):
                return f"{name.decode()} is not a JSON number"
    if text.startswith("Number out of range"):
        return f"a number overflows a float (infinities are not JSON numbers): {text}"
    return text


class JsonCodec(PayloadCodec):
    """``application/json``: UTF-8 JSON, compact; NaN and infinities are
    refused both ways (also numbers such as ``1e999`` that only a float
    overflow would turn into one); integers of any size are kept exact."""

    media_type = JSON_FORMAT
    _encode_result_directly = True
    _encode = msgspec.json.Encoder().encode
    _change_decoder = msgspec.json.Decoder(_ChangeWire)
    _result_decoder = msgspec.json.Decoder(_QueryResultWire)
    _decode_any = msgspec.json.Decoder().decode

    def dump_document(self, document: Any) -> bytes:
        _require_encodable(document, "the document")
        return self._encode(document)

    def load_document(self, data: bytes) -> Any:
        if len(data) > MAX_PAYLOAD_SIZE:
            raise _too_large(len(data))
        try:
            return self._decode_any(data)
        except msgspec.DecodeError as exc:
            detail = _json_error_detail(data, exc)
        except RecursionError:
            detail = "nested too deeply"
        raise PluginProtocolError(f"invalid {JSON_FORMAT} payload: {detail}")


class MsgpackCodec(PayloadCodec):
    """``application/msgpack``: the same documents as MessagePack (strings as
    str, floats as float64).  Decoded documents may hold JSON values only;
    integers beyond 64 bits cannot be encoded."""

    media_type = MSGPACK_FORMAT
    _check_values = True
    _encode = msgspec.msgpack.Encoder().encode
    _change_decoder = msgspec.msgpack.Decoder(_ChangeWire)
    _result_decoder = msgspec.msgpack.Decoder(_QueryResultWire)
    _decode_any = msgspec.msgpack.Decoder().decode

    def dump_document(self, document: Any) -> bytes:
        _require_encodable(document, "the document")
        return self._encode(document)

    def load_document(self, data: bytes) -> Any:
        if len(data) > MAX_PAYLOAD_SIZE:
            raise _too_large(len(data))
        try:
            document = self._decode_any(data)
        except RecursionError:
            raise PluginProtocolError(
                f"invalid {MSGPACK_FORMAT} payload: nested too deeply"
            ) from None
        except Exception as exc:  # malformed data, unhashable map keys, ...
            raise PluginProtocolError(f"invalid {MSGPACK_FORMAT} payload: {exc!r}") from None
        try:
            if _is_json_value(document):
                return document
            error = _non_json_error(document, "the document")
        except RecursionError:
            error = None
        raise error or PluginProtocolError(f"invalid {MSGPACK_FORMAT} payload: nested too deeply")


_JSON_CODEC: Final = JsonCodec()
_MSGPACK_CODEC: Final = MsgpackCodec()


def codec_for(media_type: str | None) -> PayloadCodec | None:
    """The codec for a plugin's payload format: None for None (an
    opaque-payload plugin); :class:`PayloadFormatError` for a format this host
    does not support.  Media types compare case-insensitively."""
    if media_type is None:
        return None
    name = media_type.strip().lower()
    if name == JSON_FORMAT:
        return _JSON_CODEC
    if name == MSGPACK_FORMAT:
        return _MSGPACK_CODEC
    raise PayloadFormatError(
        f"unsupported payload format {media_type!r}; supported formats: "
        f"{', '.join(SUPPORTED_FORMATS)}"
    )


__all__ = [
    "JSON_FORMAT",
    "MAX_PAYLOAD_SIZE",
    "MSGPACK_FORMAT",
    "SUPPORTED_FORMATS",
    "JsonCodec",
    "MsgpackCodec",
    "PayloadCodec",
    "change_from_document",
    "change_to_document",
    "codec_for",
    "format_timestamp",
    "parse_timestamp",
    "query_result_from_document",
    "query_result_to_document",
]
