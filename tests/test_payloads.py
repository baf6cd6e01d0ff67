"""The payload documents of ABI.md section 10 and the JSON and MessagePack
codecs: exact document shapes, validation of what plugins send, round trips."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from strategies import query_results, source_changes

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
    JSON_FORMAT,
    MAX_PAYLOAD_SIZE,
    MSGPACK_FORMAT,
    SUPPORTED_FORMATS,
    JsonCodec,
    MsgpackCodec,
    PayloadCodec,
    codec_for,
    format_timestamp,
    parse_timestamp,
)

CODECS = [JsonCodec(), MsgpackCodec()]
CODEC_IDS = ["json", "msgpack"]

ABI_EXAMPLE = {
    "op": "insert",
    "element": {
        "type": "node",
        "reference": {"source_id": "s1", "element_id": "42"},
        "labels": ["Person"],
        "effective_from": 1700000000000,
        "properties": {"name": "Ada", "age": 36, "tags": ["x"], "addr": {"city": "Oslo"}},
    },
}


def _dump(codec: PayloadCodec, document: Any) -> bytes:
    if isinstance(codec, MsgpackCodec):
        try:
            return msgspec.msgpack.encode(document)
        except OverflowError:
            pytest.skip("MessagePack cannot carry integers beyond 64 bits")
    return json.dumps(document).encode()


def _load(codec: PayloadCodec, data: bytes) -> Any:
    if isinstance(codec, MsgpackCodec):
        return msgspec.msgpack.decode(data)
    return json.loads(data)


# ------------------------------------------------------------ source changes


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_decode_the_abi_example(codec: PayloadCodec) -> None:
    change = codec.decode_change(_dump(codec, ABI_EXAMPLE))
    assert change == SourceChange(
        ChangeOp.INSERT,
        Element(
            "node",
            ElementReference("s1", "42"),
            ("Person",),
            1700000000000,
            {"name": "Ada", "age": 36, "tags": ["x"], "addr": {"city": "Oslo"}},
        ),
    )
    assert _load(codec, codec.encode_change(change)) == ABI_EXAMPLE


def test_json_encoding_is_compact_utf8() -> None:
    change = SourceChange(
        ChangeOp.UPDATE,
        Element("node", ElementReference("s", "1"), ["Città"], 5, {"name": "Åse"}),
    )
    data = JsonCodec().encode_change(change)
    assert (
        data
        == (
            '{"op":"update","element":{"type":"node","reference":{"source_id":"s",'
            '"element_id":"1"},"labels":["Città"],"effective_from":5,'
            '"properties":{"name":"Åse"}}}'
        ).encode()
    )


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_relation_round_trip_keeps_its_ends(codec: PayloadCodec) -> None:
    change = SourceChange(
        ChangeOp.INSERT,
        Element(
            "relation",
            ElementReference("s1", "r7"),
            ["KNOWS"],
            12,
            {"since": 2001, "weight": 0.5},
            in_node=ElementReference("s1", "a"),
            out_node=ElementReference("s2", "b"),
        ),
    )
    document = _load(codec, codec.encode_change(change))
    assert document["element"]["in_node"] == {"source_id": "s1", "element_id": "a"}
    assert document["element"]["out_node"] == {"source_id": "s2", "element_id": "b"}
    assert codec.decode_change(codec.encode_change(change)) == change


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_delete_with_a_minimal_element(codec: PayloadCodec) -> None:
    for element_type in ("node", "relation"):
        document = {
            "op": "delete",
            "element": {
                "type": element_type,
                "reference": {"source_id": "s1", "element_id": "9"},
                "labels": ["L"],
                "effective_from": 3,
            },
        }
        change = codec.decode_change(_dump(codec, document))
        assert change.op is ChangeOp.DELETE
        assert change.element.type == element_type
        assert change.element.properties == {}
        assert change.element.in_node is None and change.element.out_node is None


def _change_document(**element_changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(ABI_EXAMPLE))
    for key, value in element_changes.items():
        if value is _DROP:
            del document["element"][key]
        else:
            document["element"][key] = value
    return document


_DROP = object()

MALFORMED_CHANGES: list[tuple[Any, str]] = [
    ([ABI_EXAMPLE], "the document must be an object"),
    ({"element": ABI_EXAMPLE["element"]}, "op must be"),
    ({"op": "upsert", "element": ABI_EXAMPLE["element"]}, "op must be.*'upsert'"),
    ({"op": ["insert"], "element": ABI_EXAMPLE["element"]}, "op must be"),
    ({"op": "insert"}, "element must be an object, found nothing"),
    ({"op": "insert", "element": "node"}, "element must be an object, found str"),
    (_change_document(type="edge"), "element.type must be 'node' or 'relation'"),
    (_change_document(reference=_DROP), "element.reference must be an object"),
    (
        _change_document(reference={"source_id": "s1", "element_id": 42}),
        "element.reference.element_id must be a string, found int 42",
    ),
    (
        _change_document(reference={"element_id": "1"}),
        "element.reference.source_id must be a string, found nothing",
    ),
    (_change_document(labels="Person"), "element.labels must be a list of strings"),
    (_change_document(labels=["Person", 3]), "element.labels must be a list of strings"),
    (_change_document(labels=_DROP), "element.labels must be a list of strings"),
    (_change_document(effective_from=-1), "element.effective_from must be an unsigned"),
    (_change_document(effective_from=2**64), "element.effective_from must be an unsigned"),
    (_change_document(effective_from=1.5), "element.effective_from .* float"),
    (_change_document(effective_from="1700000000000"), "element.effective_from .* str"),
    (_change_document(effective_from=True), "element.effective_from .* bool"),
    (_change_document(properties=_DROP), "element.properties must be an object, found nothing"),
    (_change_document(properties=[1, 2]), "element.properties must be an object, found list"),
    (_change_document(type="relation"), "element.in_node must be an object"),
    (
        _change_document(type="relation", in_node={"source_id": "s", "element_id": "a"}),
        "element.out_node must be an object",
    ),
]


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize(("document", "message"), MALFORMED_CHANGES)
def test_malformed_change_documents(codec: PayloadCodec, document: Any, message: str) -> None:
    with pytest.raises(PluginProtocolError, match=message) as info:
        codec.decode_change(_dump(codec, document))
    assert "invalid change document" in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "invalid application/json payload"),
        (b'{"op": "insert",', "invalid application/json payload"),
        (b"\xff\xfe{}", "invalid application/json payload.*utf-8"),
        (b'{"op": NaN}', "NaN is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid application/json payload"),
    ],
)
def test_json_that_does_not_parse(data: bytes, message: str) -> None:
    with pytest.raises(PluginProtocolError, match=message):
        JsonCodec().decode_change(data)


def test_msgpack_that_does_not_parse() -> None:
    with pytest.raises(PluginProtocolError, match="invalid application/msgpack payload"):
        MsgpackCodec().decode_change(b"\xc1")  # never used in MessagePack
    with pytest.raises(PluginProtocolError, match="invalid application/msgpack payload"):
        MsgpackCodec().decode_change(msgspec.msgpack.encode(ABI_EXAMPLE)[:-3])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"raw-bytes", r"the document\.element\.properties\.bad is bytes"),
        (float("nan"), r"the document\.element\.properties\.bad is float nan"),
        (msgspec.msgpack.Ext(5, b"x"), r"the document\.element\.properties\.bad is Ext"),
        ({b"key": 1}, r"the document\.element\.properties\.bad has the key bytes"),
        ([1, [2, float("inf")]], r"the document\.element\.properties\.bad\[1\]\[1\] is float inf"),
    ],
)
def test_msgpack_documents_hold_json_values_only(value: Any, message: str) -> None:
    document = _change_document(properties={"good": 1, "bad": value})
    data = msgspec.msgpack.encode(document)
    with pytest.raises(PluginProtocolError, match=message):
        MsgpackCodec().decode_change(data)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_oversized_payload_is_refused(codec: PayloadCodec) -> None:
    with pytest.raises(PluginProtocolError, match="exceeds the limit"):
        codec.decode_change(b" " * (MAX_PAYLOAD_SIZE + 1))


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_values_the_format_cannot_hold(codec: PayloadCodec) -> None:
    element = Element("node", ElementReference("s", "e-1"), [], 0, {"bad": {1, 2}})
    with pytest.raises(PayloadFormatError, match=f"'e-1' cannot be encoded as {codec.media_type}"):
        codec.encode_change(SourceChange(ChangeOp.INSERT, element))


def test_msgpack_refuses_integers_beyond_64_bits() -> None:
    result = QueryResult("q-9", datetime.now(timezone.utc), [ResultDiff.add({"n": 2**70})])
    with pytest.raises(PayloadFormatError, match="'q-9' cannot be encoded as application/msgpack"):
        MsgpackCodec().encode_query_result(result)
    # JSON has no such limit
    assert JsonCodec().decode_query_result(JsonCodec().encode_query_result(result)) == result


def test_json_refuses_to_encode_nan() -> None:
    result = QueryResult("q-1", datetime.now(timezone.utc), [ResultDiff.add({"x": float("nan")})])
    with pytest.raises(PayloadFormatError, match="'q-1' cannot be encoded as application/json"):
        JsonCodec().encode_query_result(result)


# -------------------------------------------------------------- query results

STAMP = datetime(2026, 11, 28, 7, 30, 0, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_query_result_document_shape(codec: PayloadCodec) -> None:
    result = QueryResult(
        "q1",
        STAMP,
        [
            ResultDiff.add({"id": 1}),
            ResultDiff.delete({"id": 2}),
            ResultDiff.update({"id": 3}, {"v": 1}, {"v": 2}, grouping_keys=["k"]),
            ResultDiff.update({"id": 4}, {"v": 1}, {"v": 2}),
            ResultDiff.aggregation(None, {"sum": 10}),
            ResultDiff.aggregation({"sum": 10}, {"sum": 11}),
            ResultDiff.noop(),
        ],
        {"sequence": 8},
    )
    document = _load(codec, codec.encode_query_result(result))
    assert document == {
        "query_id": "q1",
        "timestamp": "2026-11-28T07:30:00.123456Z",
        "results": [
            {"type": "ADD", "data": {"id": 1}},
            {"type": "DELETE", "data": {"id": 2}},
            {
                "type": "UPDATE",
                "data": {"id": 3},
                "before": {"v": 1},
                "after": {"v": 2},
                "grouping_keys": ["k"],
            },
            {"type": "UPDATE", "data": {"id": 4}, "before": {"v": 1}, "after": {"v": 2}},
            {"type": "aggregation", "before": None, "after": {"sum": 10}},
            {"type": "aggregation", "before": {"sum": 10}, "after": {"sum": 11}},
            {"type": "noop"},
        ],
        "metadata": {"sequence": 8},
    }
    assert codec.decode_query_result(codec.encode_query_result(result)) == result


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05.000000Z"),  # naive = UTC
        (datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=timezone.utc), "2026-01-02T03:04:05.000007Z"),
        (
            datetime(2026, 1, 2, 1, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-01T23:00:00.000000Z",
        ),
        (
            datetime(2025, 12, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2026-01-01T01:30:00.000000Z",
        ),
    ],
)
def test_timestamps_are_written_in_utc(timestamp: datetime, text: str) -> None:
    assert format_timestamp(timestamp) == text
    document = json.loads(JsonCodec().encode_query_result(QueryResult("q", timestamp, [])))
    assert document["timestamp"] == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T07:30:00.123456Z", STAMP),
        ("2026-11-28t07:30:00.123456z", STAMP),
        ("2026-11-28T07:30:00.123456789Z", STAMP),
        ("2026-11-28T09:30:00.123456+02:00", STAMP),
        ("2026-11-28T02:00:00.123456-05:30", STAMP),
        ("2026-11-28T07:30:00Z", STAMP.replace(microsecond=0)),
        ("2026-11-28T07:30:00.5Z", STAMP.replace(microsecond=500000)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["2026-11-28", "2026-11-28T07:30:00", "2026-13-01T00:00:00Z", "yesterday", ""]
)
def test_parse_timestamp_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def _result_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "query_id": "q1",
        "timestamp": "2026-11-28T07:30:00.123456Z",
        "results": [],
        "metadata": {},
    }
    for key, value in changes.items():
        if value is _DROP:
            del document[key]
        else:
            document[key] = value
    return document


MALFORMED_RESULTS: list[tuple[Any, str]] = [
    ("q1", "the document must be an object, found str"),
    (_result_document(query_id=1), "query_id must be a string, found int"),
    (_result_document(timestamp="28/11/2026"), "timestamp must be an RFC 3339 timestamp"),
    (_result_document(timestamp=1700000000), "timestamp must be an RFC 3339 timestamp"),
    (_result_document(results=_DROP), "results must be a list, found nothing"),
    (_result_document(results=[{"type": "ADD"}]), r"results\[0\]\.data must be an object"),
    (
        _result_document(results=[{"type": "noop"}, {"type": "add", "data": {}}]),
        r"results\[1\]\.type must be 'ADD'",
    ),
    (_result_document(results=["ADD"]), r"results\[0\] must be an object"),
    (
        _result_document(results=[{"type": "UPDATE", "data": {}, "after": {}}]),
        r"results\[0\]\.before must be an object",
    ),
    (
        _result_document(
            results=[
                {"type": "UPDATE", "data": {}, "before": {}, "after": {}, "grouping_keys": "k"}
            ]
        ),
        r"results\[0\]\.grouping_keys must be a list of strings",
    ),
    (
        _result_document(results=[{"type": "aggregation", "before": None}]),
        r"results\[0\]\.after must be an object",
    ),
    (_result_document(metadata=[]), "metadata must be an object, found list"),
]


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@pytest.mark.parametrize(("document", "message"), MALFORMED_RESULTS)
def test_malformed_query_result_documents(codec: PayloadCodec, document: Any, message: str) -> None:
    with pytest.raises(PluginProtocolError, match=message) as info:
        codec.decode_query_result(_dump(codec, document))
    assert "invalid query result document" in str(info.value)


def test_query_result_optional_parts() -> None:
    document = _result_document(
        metadata=_DROP,
        results=[
            {"type": "aggregation", "after": {"n": 1}},
            {"type": "UPDATE", "data": {}, "before": {}, "after": {}, "grouping_keys": None},
        ],
    )
    result = JsonCodec().decode_query_result(json.dumps(document).encode())
    assert result.metadata == {}
    assert result.results == [
        ResultDiff.aggregation(None, {"n": 1}),
        ResultDiff.update({}, {}, {}),
    ]
    assert result.timestamp == STAMP


# -------------------------------------------------------------- round trips


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(change=source_changes())
def test_change_round_trip(codec: PayloadCodec, change: SourceChange) -> None:
    assert codec.decode_change(codec.encode_change(change)) == change


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
@given(result=query_results())
def test_query_result_round_trip(codec: PayloadCodec, result: QueryResult) -> None:
    decoded = codec.decode_query_result(codec.encode_query_result(result))
    assert decoded == result
    assert decoded.timestamp.utcoffset() == timedelta(0)


# ------------------------------------------------------------------ formats


def test_codec_for() -> None:
    assert codec_for(None) is None
    assert isinstance(codec_for(JSON_FORMAT), JsonCodec)
    assert isinstance(codec_for(" Application/JSON "), JsonCodec)
    assert isinstance(codec_for(MSGPACK_FORMAT), MsgpackCodec)
    assert codec_for(JSON_FORMAT) is codec_for(JSON_FORMAT)
    assert SUPPORTED_FORMATS == (JSON_FORMAT, MSGPACK_FORMAT)
    assert {JsonCodec.media_type, MsgpackCodec.media_type} == set(SUPPORTED_FORMATS)


@pytest.mark.parametrize("media_type", ["application/cbor", "", "json", "application/x-rust"])
def test_unknown_format(media_type: str) -> None:
    with pytest.raises(PayloadFormatError) as info:
        codec_for(media_type)
    message = str(info.value)
    assert repr(media_type) in message
    assert JSON_FORMAT in message and MSGPACK_FORMAT in message
