"""The msgspec codecs beyond the document shapes: the typed fast path agrees
with the field-by-field checks, integers of any size, non-finite floats
refused both ways, deep nesting and non-ASCII text, and the model classes as
values (repr, pickle, hash)."""

from __future__ import annotations

import collections
import contextlib
import decimal
import enum
import json
import math
import pickle
import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from bridges_helpers import Caller
from hypothesis import given
from hypothesis import strategies as st
from strategies import json_objects, query_results, source_changes

from drasi_host import MemoryStateStore, StateStoreVtableBuilder, payloads
from drasi_host._abi import ffi, lib
from drasi_host._jsonvalues import is_json_value
from drasi_host.errors import PayloadFormatError, PluginProtocolError
from drasi_host.models import (
    ChangeOp,
    Element,
    ElementReference,
    QueryResult,
    ResultDiff,
    SourceChange,
)
from drasi_host.payloads import (
    JsonCodec,
    MsgpackCodec,
    PayloadCodec,
    change_from_document,
    change_to_document,
    format_timestamp,
    query_result_from_document,
    query_result_to_document,
)

CODECS = [JsonCodec(), MsgpackCodec()]
CODEC_IDS = ["json", "msgpack"]


def _node(properties: dict[str, Any], element_id: str = "1") -> SourceChange:
    return SourceChange(
        ChangeOp.INSERT,
        Element("node", ElementReference("s", element_id), ["L"], 7, properties),
    )


@contextlib.contextmanager
def _no_slow_path() -> Iterator[None]:
    """Fail if a decode falls back to the field-by-field checks."""

    def refuse(document: Any) -> Any:
        raise AssertionError(f"the typed decoder refused a valid document: {document!r:.200}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(payloads, "change_from_document", refuse)
        patch.setattr(payloads, "query_result_from_document", refuse)
        yield


# ------------------------------------------------------------- fast path


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(change=source_changes())
def test_valid_changes_decode_on_the_typed_path(codec: PayloadCodec, change: SourceChange) -> None:
    with _no_slow_path():
        decoded = codec.decode_change(codec.encode_change(change))
    assert decoded == change
    assert type(decoded.element.labels) is tuple
    assert type(decoded.op) is ChangeOp


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(result=query_results())
def test_valid_query_results_decode_on_the_typed_path(
    codec: PayloadCodec, result: QueryResult
) -> None:
    with _no_slow_path():
        decoded = codec.decode_query_result(codec.encode_query_result(result))
    assert decoded == result
    assert decoded.timestamp.tzinfo is timezone.utc


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(change=source_changes(), result=query_results())
def test_typed_path_equals_field_by_field_path(
    codec: PayloadCodec, change: SourceChange, result: QueryResult
) -> None:
    data = codec.encode_change(change)
    assert codec.decode_change(data) == change_from_document(codec.load_document(data))
    assert codec.load_document(data) == _plain(change_to_document(change))
    data = codec.encode_query_result(result)
    assert codec.decode_query_result(data) == query_result_from_document(codec.load_document(data))
    assert codec.load_document(data) == _plain(query_result_to_document(result))


def _plain(document: Any) -> Any:
    """``document`` with tuples as lists (what a decoder returns)."""
    return json.loads(json.dumps(document))


def test_node_with_relation_ends_decodes_as_before() -> None:
    """A node's in_node/out_node are ignored, as the field checks do."""
    document = {
        "op": "insert",
        "element": {
            "type": "node",
            "reference": {"source_id": "s", "element_id": "1"},
            "labels": [],
            "effective_from": 0,
            "properties": {},
            "in_node": {"source_id": "s", "element_id": "2"},
            "out_node": 5,
        },
    }
    for codec in CODECS:
        change = codec.decode_change(codec.dump_document(document))
        assert change.element.in_node is None and change.element.out_node is None


def test_result_diff_with_foreign_fields_decodes_as_before() -> None:
    document = {
        "query_id": "q",
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "results": [{"type": "ADD", "data": {"a": 1}, "before": {"b": 2}, "grouping_keys": []}],
    }
    result = JsonCodec().decode_query_result(json.dumps(document).encode())
    assert result.results == [ResultDiff.add({"a": 1})]
    assert result.metadata == {}


# ---------------------------------------------------------- big integers

_big_ints = st.integers().filter(lambda n: not -(2**63) <= n < 2**64) | st.integers()


@given(value=_big_ints, effective_from=st.integers(min_value=0, max_value=2**64 - 1))
def test_json_keeps_integers_of_any_size(value: int, effective_from: int) -> None:
    codec = JsonCodec()
    change = SourceChange(
        ChangeOp.UPDATE,
        Element("node", ElementReference("s", "1"), [], effective_from, {"n": value, "l": [value]}),
    )
    decoded = codec.decode_change(codec.encode_change(change))
    assert decoded == change
    assert decoded.element.properties["n"] == value
    result = QueryResult("q", datetime.now(timezone.utc), [ResultDiff.add({"n": value})])
    assert codec.decode_query_result(codec.encode_query_result(result)) == result
    assert codec.load_document(codec.dump_document({"n": value})) == {"n": value}


@given(value=st.integers(min_value=2**64) | st.integers(max_value=-(2**63) - 1))
def test_msgpack_refuses_integers_beyond_64_bits(value: int) -> None:
    with pytest.raises(PayloadFormatError, match="cannot be encoded as application/msgpack"):
        MsgpackCodec().encode_change(_node({"n": value}))


def test_effective_from_beyond_64_bits_is_refused() -> None:
    document = change_to_document(_node({}))
    document["element"]["effective_from"] = 2**64
    with pytest.raises(PluginProtocolError, match=r"element\.effective_from must be an unsigned"):
        JsonCodec().decode_change(json.dumps(document).encode())


# ------------------------------------------------------ non-finite floats

_non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(bad=_non_finite, depth=st.integers(min_value=0, max_value=5), in_list=st.booleans())
def test_non_finite_floats_are_refused_on_encoding(
    codec: PayloadCodec, bad: float, depth: int, in_list: bool
) -> None:
    value: Any = bad
    for _ in range(depth):
        value = [value] if in_list else {"k": value}
    with pytest.raises(PayloadFormatError, match="NaN and infinities"):
        codec.encode_change(_node({"x": value}))
    result = QueryResult(
        "q", datetime.now(timezone.utc), [ResultDiff.aggregation(None, {"x": value})]
    )
    with pytest.raises(PayloadFormatError, match="NaN and infinities"):
        codec.encode_query_result(result)
    with pytest.raises(ValueError):
        codec.dump_document({"x": value})


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1E309"])
def test_json_refuses_non_finite_numbers_on_decoding(text: str) -> None:
    codec = JsonCodec()
    with pytest.raises(PluginProtocolError, match="invalid application/json payload"):
        codec.load_document(text.encode())
    document = json.dumps(change_to_document(_node({"x": 0}))).replace('"x": 0', f'"x": {text}')
    with pytest.raises(PluginProtocolError, match="invalid application/json payload"):
        codec.decode_change(document.encode())


def test_json_load_document_refuses_1e999() -> None:
    with pytest.raises(PluginProtocolError, match="overflows a float"):
        JsonCodec().load_document(b'{"x": 1e999}')


@given(bad=_non_finite)
def test_msgpack_refuses_non_finite_floats_on_decoding(bad: float) -> None:
    document = _plain(change_to_document(_node({})))
    document["element"]["properties"] = {"deep": [{"x": bad}]}
    with pytest.raises(PluginProtocolError, match=r"properties\.deep\[0\]\.x is float"):
        MsgpackCodec().decode_change(msgspec.msgpack.encode(document))
    result = {"query_id": "q", "timestamp": "2026-01-01T00:00:00Z", "results": []}
    result["metadata"] = {"x": bad}
    with pytest.raises(PluginProtocolError, match=r"metadata\.x is float"):
        MsgpackCodec().decode_query_result(msgspec.msgpack.encode(result))


# ------------------------------------------------- nesting and non-ASCII


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(depth=st.integers(min_value=1, max_value=200), leaf=st.text(max_size=3))
def test_deep_nesting_round_trips(codec: PayloadCodec, depth: int, leaf: str) -> None:
    value: Any = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    change = _node({"deep": value})
    assert codec.decode_change(codec.encode_change(change)) == change


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_nesting_beyond_the_recursion_limit_is_an_error(codec: PayloadCodec) -> None:
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    with pytest.raises(PayloadFormatError):
        codec.encode_change(_node({"deep": value}))
    if isinstance(codec, JsonCodec):
        data = b'{"op":"insert","element":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    else:
        data = b"\x82\xa2op\xa6insert\xa7element" + b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(PluginProtocolError):
        codec.decode_change(data)


_unicode = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(
    key=_unicode,
    value=_unicode,
    label=_unicode.filter(bool),
    element_id=_unicode,
    rows=json_objects(),
)
def test_non_ascii_text_round_trips(
    codec: PayloadCodec, key: str, value: str, label: str, element_id: str, rows: dict[str, Any]
) -> None:
    change = SourceChange(
        ChangeOp.INSERT,
        Element("node", ElementReference("ß-源", element_id), [label], 1, {key: value, "r": rows}),
    )
    assert codec.decode_change(codec.encode_change(change)) == change
    result = QueryResult(element_id, datetime(2026, 1, 1), [ResultDiff.add({key: value})], rows)
    assert codec.decode_query_result(codec.encode_query_result(result)) == result


def test_json_is_written_as_utf8_not_escapes() -> None:
    assert b"\\u" not in JsonCodec().encode_change(_node({"名前": "Åse 😀"}))
    assert "😀".encode() in JsonCodec().encode_change(_node({"名前": "Åse 😀"}))


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize(
    "bad", [{1, 2}, b"bytes", object(), {1: "int key"}, datetime(2026, 1, 1)], ids=repr
)
def test_values_no_document_can_hold(codec: PayloadCodec, bad: Any) -> None:
    with pytest.raises(PayloadFormatError, match="cannot be encoded"):
        codec.encode_change(_node({"bad": [bad]}))
    with pytest.raises((TypeError, ValueError)):
        codec.dump_document({"bad": bad})


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_tuples_and_subclasses_are_written_as_their_json_type(codec: PayloadCodec) -> None:
    change = _node({"t": (1, "a"), "flag": ChangeOp.DELETE})
    assert codec.decode_change(codec.encode_change(change)).element.properties == {
        "t": [1, "a"],
        "flag": 2,
    }


# ----------------------------------------------------------- as values


def test_model_values_repr_pickle_and_hash() -> None:
    change = _node({"a": [1, 2]})
    assert repr(change.element.reference) == "ElementReference(source_id='s', element_id='1')"
    assert repr(change).startswith("SourceChange(op=<ChangeOp.INSERT: 0>, element=Element(")
    assert pickle.loads(pickle.dumps(change)) == change
    result = QueryResult("q", datetime(2026, 1, 1), [ResultDiff.update({}, {}, {}, ["k"])])
    assert pickle.loads(pickle.dumps(result)) == result
    assert hash(result) == hash(QueryResult("q", datetime(2026, 1, 1), [], {"m": 1}))
    assert {change, _node({"a": [1, 2]})} == {change}


def test_element_needs_its_properties() -> None:
    with pytest.raises(TypeError, match="properties"):
        Element("node", ElementReference("s", "1"), [], 0)  # type: ignore[call-arg]


def test_decoded_values_equal_built_values() -> None:
    data = JsonCodec().encode_change(_node({"x": 1.5}))
    decoded = JsonCodec().decode_change(data)
    assert decoded == _node({"x": 1.5})
    assert hash(decoded) == hash(_node({"x": 1.5}))
    assert type(decoded.element.reference) is ElementReference


# ------------------------------------------------- through the C boundary


def _through_payload(data: bytes) -> bytes:
    """``data`` as a host-built ``DrasiPayload`` (C heap copy), read back and
    released the way a plugin releases it."""
    payload = lib.dh_payload_new(ffi.from_buffer("uint8_t[]", data), len(data))
    assert payload != ffi.NULL
    try:
        return bytes(ffi.buffer(payload.data, payload.len))
    finally:
        payload.drop_fn(payload)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(change=source_changes(), result=query_results(), big=_big_ints)
def test_documents_round_trip_through_the_c_vtables(
    codec: PayloadCodec, change: SourceChange, result: QueryResult, big: int
) -> None:
    """Encoded documents cross the C boundary as a plugin sees them (a
    ``DrasiPayload``, and a value of the native state store's vtable) and
    decode to what was encoded."""
    if isinstance(codec, JsonCodec):  # JSON carries integers of any size
        change = SourceChange(
            change.op,
            Element(
                change.element.type,
                change.element.reference,
                change.element.labels,
                change.element.effective_from,
                {**change.element.properties, "big": big, "текст": "ü😀"},
                change.element.in_node,
                change.element.out_node,
            ),
        )
    store = MemoryStateStore()
    with StateStoreVtableBuilder.build(store) as handle:
        c = Caller(handle.vtable)
        for data, decode, value in (
            (codec.encode_change(change), codec.decode_change, change),
            (codec.encode_query_result(result), codec.decode_query_result, result),
        ):
            assert decode(_through_payload(data)) == value
            assert c.set("docs", "d", data) == (0, None)
            kind, stored = c.get("docs", "d")
            assert kind == "found" and isinstance(stored, bytes)
            assert decode(stored) == value


class StdlibJson(PayloadCodec):
    """A codec written against the public base class only."""

    media_type = "application/x-test-json"

    def load_document(self, data: bytes) -> Any:
        return json.loads(data)

    def dump_document(self, document: Any) -> bytes:
        return json.dumps(document).encode()


@given(change=source_changes(), result=query_results())
def test_a_codec_built_on_the_base_class_uses_the_documents(
    change: SourceChange, result: QueryResult
) -> None:
    codec = StdlibJson()
    assert codec.decode_change(codec.encode_change(change)) == change
    assert codec.decode_query_result(codec.encode_query_result(result)) == result
    assert JsonCodec().decode_change(codec.encode_change(change)) == change


@given(moment=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
def test_timestamp_text_is_the_same_on_every_path(moment: datetime) -> None:
    expected = moment.isoformat(timespec="microseconds") + "Z"
    assert format_timestamp(moment) == expected  # naive: taken as UTC
    assert format_timestamp(moment.replace(tzinfo=timezone.utc)) == expected


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_encoding_errors_name_the_bad_value(codec: PayloadCodec) -> None:
    with pytest.raises(
        PayloadFormatError, match=r"element\.properties\.a\[1\]\.b is the float nan"
    ):
        codec.encode_change(_node({"a": [1, {"b": float("nan")}]}))
    with pytest.raises(PayloadFormatError, match=r"element\.properties\.d has the key int 3"):
        codec.encode_change(_node({"d": {3: 1}}))
    result = QueryResult(
        "q", datetime(2026, 1, 1), [ResultDiff.noop(), ResultDiff.update({}, {"x": b"1"}, {})]
    )
    with pytest.raises(PayloadFormatError, match=r"results\[1\]\.before\.x is bytes"):
        codec.encode_query_result(result)
    with pytest.raises(PayloadFormatError, match=r"metadata\.m is set"):
        codec.encode_query_result(QueryResult("q", datetime(2026, 1, 1), [], {"m": {1}}))


class _GeneralJson(JsonCodec):
    """The JSON codec without its direct way of writing query results."""

    _encode_result_directly = False


@given(query_results())
def test_query_results_written_directly_match_the_general_path(result: QueryResult) -> None:
    # timestamps() gives UTC datetimes with microseconds among others: the
    # direct path runs for those and must write the same bytes.
    assert JsonCodec().encode_query_result(result) == _GeneralJson().encode_query_result(result)


_STAMP = datetime(2026, 11, 28, 7, 30, 0, 123456, tzinfo=timezone.utc)


class _IntEnum(enum.IntEnum):
    A = 1


class _Str(str):
    pass


class _Plain(enum.Enum):
    A = "a"


# Values the encoders must refuse or may accept only through the Python
# check: non-finite floats, non-JSON types, subclasses of the JSON types.
_odd_scalars = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, b"x", bytearray(b"y"), _Plain.A]),
    st.sampled_from([_IntEnum.A, _Str("s"), decimal.Decimal("1.5"), uuid.UUID(int=7)]),
    st.sampled_from([datetime(2026, 1, 1), frozenset({1}), {2}]),
)
_any_scalar = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | _odd_scalars
)
_any_key = st.text(max_size=4) | st.integers(0, 3) | st.builds(_Str, st.text(max_size=3))
_any_values = st.recursive(
    _any_scalar,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_any_key, children, max_size=3)
        | st.dictionaries(st.text(max_size=4), children, max_size=3).map(collections.OrderedDict)
    ),
    max_leaves=10,
)


@given(_any_values)
def test_the_quick_value_test_never_accepts_what_the_full_check_refuses(value: Any) -> None:
    assert not is_json_value(value) or payloads._is_encodable(value)


@given(json_objects())
def test_the_quick_value_test_accepts_plain_json(value: dict[str, Any]) -> None:
    assert is_json_value(value)
    assert is_json_value([value, (value,)])


def test_the_quick_value_test_leaves_deep_and_odd_values_to_the_full_check() -> None:
    deep: Any = 1
    for _ in range(64):
        deep = [deep]
    assert is_json_value(deep)
    assert not is_json_value([deep]) and payloads._is_encodable([deep])
    for value in ({"a": _IntEnum.A}, {_Str("k"): 1}, collections.OrderedDict(a=1)):
        assert not is_json_value(value)
    assert not is_json_value({"a": [1, {"b": math.nan}]})
    assert not is_json_value({"a": {1: 2}})


_diffs_with_any_values = st.one_of(
    st.builds(ResultDiff.add, st.dictionaries(_any_key, _any_values, max_size=3)),
    st.builds(
        ResultDiff.update,
        st.dictionaries(st.text(max_size=3), _any_values, max_size=2),
        st.dictionaries(_any_key, _any_values, max_size=2),
        st.dictionaries(st.text(max_size=3), _any_values, max_size=2),
    ),
    st.builds(ResultDiff.aggregation, st.none() | st.just({"n": 1}), st.just({"v": math.inf})),
    st.just(ResultDiff.noop()),
)


def _outcome(codec: PayloadCodec, result: QueryResult) -> tuple[str, Any]:
    try:
        return "bytes", codec.encode_query_result(result)
    except PayloadFormatError as exc:
        return "error", str(exc)


@given(
    diffs=st.lists(_diffs_with_any_values, max_size=3),
    metadata=st.dictionaries(_any_key, _any_values, max_size=2),
    stamp=st.sampled_from(
        [_STAMP, _STAMP.replace(microsecond=0), datetime(2026, 1, 1, 0, 0, 0, 5)]
    ),
)
def test_any_values_give_the_same_bytes_or_error_on_both_paths(
    diffs: list[ResultDiff], metadata: dict[Any, Any], stamp: datetime
) -> None:
    """Also results that cannot be encoded (NaN, sets, bytes, integer keys,
    ...): the direct path writes the general path's bytes or raises its
    error, naming the same field."""
    result = QueryResult("q", stamp, diffs, metadata)
    assert _outcome(JsonCodec(), result) == _outcome(_GeneralJson(), result)


def test_which_query_results_are_written_directly() -> None:
    plain = QueryResult("q", _STAMP, [ResultDiff.add({"a": 1})], {"m": [1, 2.5]})
    assert payloads._writes_as_is(plain)
    assert payloads._writes_as_is(
        QueryResult(
            "q",
            _STAMP,
            [
                ResultDiff.update({"a": 1}, {"a": 0}, {"a": 1}, ["a"]),
                ResultDiff.aggregation({"n": 1}, {"n": 2}),
                ResultDiff.noop(),
                ResultDiff.delete({"a": (1, 2)}),
            ],
        )
    )
    not_direct = [
        QueryResult("q", _STAMP.replace(microsecond=0), []),  # msgspec drops ".000000"
        QueryResult("q", _STAMP.astimezone(timezone(timedelta(hours=2))), []),
        QueryResult("q", _STAMP, [ResultDiff.aggregation(None, {"n": 1})]),  # before: null
        QueryResult("q", _STAMP, [ResultDiff.add({"a": float("nan")})]),
        QueryResult("q", _STAMP, [ResultDiff.add({1: "a"})]),  # type: ignore[dict-item]
        QueryResult("q", _STAMP, [ResultDiff.update({"a": 1}, {"b": {1, 2}}, {"a": 1})]),
        QueryResult("q", _STAMP, [], {"m": float("inf")}),
        QueryResult("q", _STAMP, [ResultDiff("ADD", None)]),  # not the ADD shape
    ]
    for result in not_direct:
        assert not payloads._writes_as_is(result), result


@pytest.mark.parametrize(
    ("result", "where"),
    [
        (QueryResult("q", _STAMP, [ResultDiff.add({"a": float("nan")})]), "results[0].data.a"),
        (QueryResult("q", _STAMP, [], {"m": [float("-inf")]}), "metadata.m[0]"),
        (
            QueryResult("q", _STAMP, [ResultDiff.noop(), ResultDiff.add({"s": {1}})]),
            "results[1].data.s",
        ),
    ],
)
def test_results_that_are_not_written_directly_keep_their_errors(
    result: QueryResult, where: str
) -> None:
    with pytest.raises(PayloadFormatError, match=re.escape(where)):
        JsonCodec().encode_query_result(result)
