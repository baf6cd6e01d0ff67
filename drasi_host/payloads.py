"""Payload formats: the documents of ABI.md section 10 and their codecs.

A plugin that exports ``drasi_plugin_payload_format`` names one media type;
:func:`codec_for` maps it to a :class:`PayloadCodec` (None for an
opaque-payload plugin, :class:`PayloadFormatError` for a format this host does
not know).  A codec turns bytes into a document (``load_document``) and back
(``dump_document``); everything else is shared:

* :func:`change_from_document` / :func:`change_to_document` for source changes,
* :func:`query_result_from_document` / :func:`query_result_to_document` for
  query results.

Decoding trusts nothing: every field is checked and a bad document raises
:class:`PluginProtocolError` naming the field, what was expected and what was
found.  Unknown extra keys are ignored (forward compatibility).  A ``delete``
may carry only ``type``, ``reference``, ``labels`` and ``effective_from``;
missing ``properties`` then decode as ``{}`` and a relation's missing
``in_node``/``out_node`` as None.

Timestamps of query results are written as RFC 3339 UTC with microseconds and
``Z`` (``2026-11-28T07:30:00.123456Z``); a naive ``datetime`` is treated as
UTC.  Reading accepts any RFC 3339 offset and returns an aware UTC datetime.

Documents are JSON values only (null, booleans, integers, finite floats,
strings, lists, string-keyed objects).  The MessagePack codec checks that a
decoded document holds nothing else (no binary, extension types, NaN).  On
encoding, a value the format cannot hold raises :class:`PayloadFormatError`.

The JSON codec uses the standard library's C encoder and decoder with compact
separators and UTF-8 output; the MessagePack codec needs the optional
``msgpack`` package (``pip install drasi-host[msgpack]``).
"""

from __future__ import annotations

import abc
import importlib
import json
import json.encoder
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Final

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
#: The payload formats this host knows (MessagePack needs ``msgpack``).
SUPPORTED_FORMATS: Final = (JSON_FORMAT, MSGPACK_FORMAT)

_msgpack: Any
try:
    _msgpack = importlib.import_module("msgpack")
except ImportError:  # optional dependency
    _msgpack = None

_MISSING: Final[Any] = object()
_OP_TO_WIRE: Final = {op: name for name, op in OP_FROM_WIRE.items()}
# Errors the encoders raise for values a format cannot hold.
_ENCODE_ERRORS: Final = (TypeError, ValueError, OverflowError, RecursionError)
_U64_LIMIT: Final = 1 << 64


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


def format_timestamp(value: datetime) -> str:
    """``value`` as RFC 3339 UTC with microseconds and ``Z``; a naive datetime
    is taken to be UTC."""
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


# -------------------------------------------------------------------- codecs


class PayloadCodec(abc.ABC):
    """One payload format.  Subclasses set ``media_type`` and implement
    :meth:`load_document` and :meth:`dump_document`."""

    media_type: str

    @abc.abstractmethod
    def load_document(self, data: bytes) -> Any:
        """Parse ``data`` into a document; :class:`PluginProtocolError` when
        it is too large or not valid in this format."""

    @abc.abstractmethod
    def dump_document(self, document: Any) -> bytes:
        """Serialise ``document``; raises ``TypeError``/``ValueError``/
        ``OverflowError`` for values the format cannot hold."""

    def decode_change(self, data: bytes) -> SourceChange:
        """A change payload as a :class:`SourceChange`."""
        return change_from_document(self.load_document(data))

    def encode_change(self, change: SourceChange) -> bytes:
        """``change`` as a change payload."""
        try:
            return self.dump_document(change_to_document(change))
        except _ENCODE_ERRORS as exc:
            raise PayloadFormatError(
                f"change of element {change.element.reference.element_id!r} cannot be "
                f"encoded as {self.media_type}: {exc}"
            ) from exc

    def encode_query_result(self, result: QueryResult) -> bytes:
        """``result`` as a query result payload."""
        try:
            return self.dump_document(query_result_to_document(result))
        except _ENCODE_ERRORS as exc:
            raise PayloadFormatError(
                f"query result of query {result.query_id!r} cannot be encoded as "
                f"{self.media_type}: {exc}"
            ) from exc

    def decode_query_result(self, data: bytes) -> QueryResult:
        """A query result payload as a :class:`QueryResult`."""
        return query_result_from_document(self.load_document(data))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.media_type!r})"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_JSON_DECODE: Final = json.JSONDecoder(parse_constant=_reject_constant).decode


def _refuse_to_encode(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} {value!r:.60} is not a JSON value")


_PORTABLE_JSON_ENCODE: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_refuse_to_encode
).encode


def _make_json_encoder() -> Callable[[Any], str]:
    """A compact UTF-8 JSON encoder refusing NaN.  ``JSONEncoder.encode``
    builds a fresh C encoder on every call, which costs more than encoding a
    small document, so the C encoder is built once here when the interpreter
    has it (CPython) and passes a self-test; otherwise the public API is used."""
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is not None:
        try:
            encoder = c_make_encoder(
                None, _refuse_to_encode, json.encoder.encode_basestring, None,
                ":", ",", False, False, False,
            )  # fmt: skip

            def encode(document: Any) -> str:
                return "".join(encoder(document, 0))

            if encode({"a": [1, 2.5, None, "é"]}) == '{"a":[1,2.5,null,"é"]}':
                return encode
        except Exception:  # an interpreter whose private encoder differs
            pass
    return _PORTABLE_JSON_ENCODE


_JSON_ENCODE: Final = _make_json_encoder()


class JsonCodec(PayloadCodec):
    """``application/json``: UTF-8 JSON, compact; NaN and infinities are
    refused both ways."""

    media_type = JSON_FORMAT

    def load_document(self, data: bytes) -> Any:
        if len(data) > MAX_PAYLOAD_SIZE:
            raise _too_large(len(data))
        try:
            return _JSON_DECODE(str(data, "utf-8"))
        except (ValueError, RecursionError) as exc:
            raise PluginProtocolError(f"invalid {JSON_FORMAT} payload: {exc}") from None

    def dump_document(self, document: Any) -> bytes:
        return _JSON_ENCODE(document).encode("utf-8")


_JSON_SCALARS: Final = frozenset({str, int, bool, type(None)})


def _is_json_value(value: Any) -> bool:
    """Whether ``value`` is a JSON value (string keys, finite floats)."""
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


class MsgpackCodec(PayloadCodec):
    """``application/msgpack``: the same documents as MessagePack (strings as
    str, floats as float64).  Decoded documents may hold JSON values only."""

    media_type = MSGPACK_FORMAT

    def __init__(self) -> None:
        if _msgpack is None:
            raise PayloadFormatError(
                f"payload format {MSGPACK_FORMAT} needs the msgpack package: "
                "install drasi-host[msgpack]"
            )
        self._packb = _msgpack.packb
        self._unpackb = _msgpack.unpackb

    def load_document(self, data: bytes) -> Any:
        if len(data) > MAX_PAYLOAD_SIZE:
            raise _too_large(len(data))
        try:
            document = self._unpackb(data, raw=False, strict_map_key=True, timestamp=0)
        except Exception as exc:  # msgpack raises several unrelated types
            raise PluginProtocolError(f"invalid {MSGPACK_FORMAT} payload: {exc!r}") from None
        try:
            if _is_json_value(document):
                return document
            error = _non_json_error(document, "the document")
        except RecursionError:
            error = None
        raise error or PluginProtocolError(f"invalid {MSGPACK_FORMAT} payload: nested too deeply")

    def dump_document(self, document: Any) -> bytes:
        data: bytes = self._packb(document, use_bin_type=True)
        return data


_JSON_CODEC: Final = JsonCodec()
_msgpack_codec: MsgpackCodec | None = None


def codec_for(media_type: str | None) -> PayloadCodec | None:
    """The codec for a plugin's payload format: None for None (an
    opaque-payload plugin); :class:`PayloadFormatError` for a format this host
    does not support, or MessagePack without the msgpack package.  Media
    types compare case-insensitively."""
    global _msgpack_codec
    if media_type is None:
        return None
    name = media_type.strip().lower()
    if name == JSON_FORMAT:
        return _JSON_CODEC
    if name == MSGPACK_FORMAT:
        if _msgpack_codec is None:
            _msgpack_codec = MsgpackCodec()
        return _msgpack_codec
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
