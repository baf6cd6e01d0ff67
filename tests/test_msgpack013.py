"""The FFI 0.13 MessagePack codec (ABI-0.13.md section 12).

The worked examples of the specification are copied here byte for byte: each
decodes to the structure it describes and encodes back to the same bytes.
Generated documents round-trip through encode and decode, and the encoder's
bytes agree with an independent encoder (the ``msgpack`` package) fed the
section 12 structures built by hand.  Malformed documents raise
``PayloadFormatError`` naming the field; the section 12.6 alternatives are
accepted.
"""

from __future__ import annotations

import mmap
from datetime import datetime, timedelta, timezone
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drasi_host import _msgpack013 as mp
from drasi_host.errors import PayloadFormatError
from drasi_host.models import ChangeOp


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# ---- the worked examples, copied from ABI-0.13.md section 12 --------------

EXAMPLE_A = _hex("""
85 a9 73 6f 75 72 63 65 5f 69 64 a2 73 31 a5 65 76 65 6e 74 81 a6 43 68 61 6e 67 65 81 a6 49 6e
73 65 72 74 81 a7 65 6c 65 6d 65 6e 74 81 a4 4e 6f 64 65 82 a8 6d 65 74 61 64 61 74 61 83 a9 72
65 66 65 72 65 6e 63 65 82 a9 73 6f 75 72 63 65 5f 69 64 a2 73 31 aa 65 6c 65 6d 65 6e 74 5f 69
64 a2 34 32 a6 6c 61 62 65 6c 73 91 a6 50 65 72 73 6f 6e ae 65 66 66 65 63 74 69 76 65 5f 66 72
6f 6d cf 00 00 01 8b cf e5 68 00 aa 70 72 6f 70 65 72 74 69 65 73 81 a6 76 61 6c 75 65 73 83 a3
61 67 65 81 a7 49 6e 74 65 67 65 72 24 a4 6e 61 6d 65 81 a6 53 74 72 69 6e 67 a3 41 64 61 a5 73
63 6f 72 65 81 a5 46 6c 6f 61 74 cb 3f f8 00 00 00 00 00 00 ac 74 69 6d 65 73 74 61 6d 70 5f 75
73 cf 00 06 0a 24 18 1e 40 00 a8 73 65 71 75 65 6e 63 65 07 af 73 6f 75 72 63 65 5f 70 6f 73 69
74 69 6f 6e c0
""")

EXAMPLE_B = _hex("""
85 a9 73 6f 75 72 63 65 5f 69 64 a2 73 31 a5 65 76 65 6e 74 81 a6 43 68 61 6e 67 65 81 a6 44 65
6c 65 74 65 81 a8 6d 65 74 61 64 61 74 61 83 a9 72 65 66 65 72 65 6e 63 65 82 a9 73 6f 75 72 63
65 5f 69 64 a2 73 31 aa 65 6c 65 6d 65 6e 74 5f 69 64 a2 34 32 a6 6c 61 62 65 6c 73 91 a6 50 65
72 73 6f 6e ae 65 66 66 65 63 74 69 76 65 5f 66 72 6f 6d cf 00 00 01 8b cf e5 68 01 ac 74 69 6d
65 73 74 61 6d 70 5f 75 73 cf 00 06 0a 24 18 1e 43 e8 a8 73 65 71 75 65 6e 63 65 c0 af 73 6f 75
72 63 65 5f 70 6f 73 69 74 69 6f 6e 93 01 02 03
""")

EXAMPLE_C = _hex("""
84 a9 73 6f 75 72 63 65 5f 69 64 a2 73 31 a6 63 68 61 6e 67 65 81 a6 49 6e 73 65 72 74 81 a7 65
6c 65 6d 65 6e 74 81 a8 52 65 6c 61 74 69 6f 6e 84 a8 6d 65 74 61 64 61 74 61 83 a9 72 65 66 65
72 65 6e 63 65 82 a9 73 6f 75 72 63 65 5f 69 64 a2 73 31 aa 65 6c 65 6d 65 6e 74 5f 69 64 a2 72
31 a6 6c 61 62 65 6c 73 91 a5 4b 4e 4f 57 53 ae 65 66 66 65 63 74 69 76 65 5f 66 72 6f 6d 00 a7
69 6e 5f 6e 6f 64 65 82 a9 73 6f 75 72 63 65 5f 69 64 a2 73 31 aa 65 6c 65 6d 65 6e 74 5f 69 64
a1 31 a8 6f 75 74 5f 6e 6f 64 65 82 a9 73 6f 75 72 63 65 5f 69 64 a2 73 31 aa 65 6c 65 6d 65 6e
74 5f 69 64 a1 32 aa 70 72 6f 70 65 72 74 69 65 73 81 a6 76 61 6c 75 65 73 80 ac 74 69 6d 65 73
74 61 6d 70 5f 75 73 cf 00 06 0a 24 18 1e 40 00 a8 73 65 71 75 65 6e 63 65 01
""")

EXAMPLE_D = _hex("""
85 a8 71 75 65 72 79 5f 69 64 a2 71 31 a8 73 65 71 75 65 6e 63 65 03 a9 74 69 6d 65 73 74 61 6d
70 bb 32 30 32 36 2d 31 31 2d 32 38 54 30 37 3a 33 30 3a 30 30 2e 31 32 33 34 35 36 5a a7 72 65
73 75 6c 74 73 94 83 a4 74 79 70 65 a3 41 44 44 a4 64 61 74 61 81 a4 6e 61 6d 65 a3 41 64 61 ad
72 6f 77 5f 73 69 67 6e 61 74 75 72 65 2a 85 a4 74 79 70 65 a6 55 50 44 41 54 45 a4 64 61 74 61
81 a1 6e 02 a6 62 65 66 6f 72 65 81 a1 6e 01 a5 61 66 74 65 72 81 a1 6e 02 ad 72 6f 77 5f 73 69
67 6e 61 74 75 72 65 2a 84 a4 74 79 70 65 ab 61 67 67 72 65 67 61 74 69 6f 6e a6 62 65 66 6f 72
65 c0 a5 61 66 74 65 72 81 a1 63 01 ad 72 6f 77 5f 73 69 67 6e 61 74 75 72 65 07 81 a4 74 79 70
65 a4 6e 6f 6f 70 a8 6d 65 74 61 64 61 74 61 80
""")

CONTROL_FUTURES_DUE = _hex("81 a7 43 6f 6e 74 72 6f 6c aa 46 75 74 75 72 65 73 44 75 65")

# ElementValue table of section 12.2: python value -> bytes
VALUE_TABLE: list[tuple[Any, bytes]] = [
    (None, _hex("a4 4e 75 6c 6c")),
    (True, _hex("81 a4 42 6f 6f 6c c3")),
    (-5, _hex("81 a7 49 6e 74 65 67 65 72 fb")),
    (300, _hex("81 a7 49 6e 74 65 67 65 72 cd 01 2c")),
    (1.5, _hex("81 a5 46 6c 6f 61 74 cb 3f f8 00 00 00 00 00 00")),
    ("Ada", _hex("81 a6 53 74 72 69 6e 67 a3 41 64 61")),
    ([1, None], _hex("81 a4 4c 69 73 74 92 81 a7 49 6e 74 65 67 65 72 01 a4 4e 75 6c 6c")),
    (
        {"k": False},
        _hex("81 a6 4f 62 6a 65 63 74 81 a6 76 61 6c 75 65 73 81 a1 6b 81 a4 42 6f 6f 6c c2"),
    ),
    (
        datetime(2024, 6, 15, 13, 45, 30),
        _hex("81 ad 4c 6f 63 61 6c 44 61 74 65 54 69 6d 65 b3") + b"2024-06-15T13:45:30",
    ),
    (
        datetime(2024, 6, 15, 13, 45, 30, tzinfo=timezone(timedelta(hours=2))),
        _hex("81 ad 5a 6f 6e 65 64 44 61 74 65 54 69 6d 65 b9") + b"2024-06-15T13:45:30+02:00",
    ),
]

S1_42 = mp.ElementReference("s1", "42")


def test_example_sizes() -> None:
    assert (len(EXAMPLE_A), len(EXAMPLE_B), len(EXAMPLE_C), len(EXAMPLE_D)) == (261, 176, 250, 240)


def test_example_a_insert_node() -> None:
    event = mp.decode_source_event(EXAMPLE_A)
    assert event == mp.SourceEventPayload(
        source_id="s1",
        timestamp_us=1_700_000_000_000_000,
        change=mp.Change(
            ChangeOp.INSERT,
            mp.Element(
                "node",
                S1_42,
                ("Person",),
                1_700_000_000_000,
                {"age": 36, "name": "Ada", "score": 1.5},
            ),
        ),
        control=None,
        sequence=7,
        source_position=None,
    )
    assert type(event.change.element.properties["age"]) is int  # type: ignore[union-attr]
    assert type(event.change.element.properties["score"]) is float  # type: ignore[union-attr]
    assert (event.op, event.label, event.entity_id) == (ChangeOp.INSERT, "Person", "42")
    assert mp.encode_source_event(event) == EXAMPLE_A


def test_example_b_delete_with_position() -> None:
    event = mp.decode_source_event(EXAMPLE_B)
    assert event.change == mp.Change(
        ChangeOp.DELETE, mp.Element(None, S1_42, ("Person",), 1_700_000_000_001, {})
    )
    assert event.sequence is None
    assert event.source_position == b"\x01\x02\x03"
    assert event.timestamp_us == 1_700_000_000_001_000
    assert (event.op, event.entity_id) == (ChangeOp.DELETE, "42")
    assert mp.encode_source_event(event) == EXAMPLE_B


def test_example_c_bootstrap_relation() -> None:
    record = mp.decode_bootstrap_event(EXAMPLE_C)
    assert record == mp.BootstrapEventPayload(
        source_id="s1",
        timestamp_us=1_700_000_000_000_000,
        change=mp.Change(
            ChangeOp.INSERT,
            mp.Element(
                "relation",
                mp.ElementReference("s1", "r1"),
                ("KNOWS",),
                0,
                {},
                in_node=mp.ElementReference("s1", "1"),
                out_node=mp.ElementReference("s1", "2"),
            ),
        ),
        control=None,
        sequence=1,
    )
    assert mp.encode_bootstrap_event(record) == EXAMPLE_C


def test_example_d_query_result() -> None:
    result = mp.decode_query_result(EXAMPLE_D)
    assert result == mp.QueryResult(
        query_id="q1",
        timestamp=datetime(2026, 11, 28, 7, 30, 0, 123456, tzinfo=timezone.utc),
        results=[
            mp.ResultDiff("ADD", data={"name": "Ada"}, row_signature=42),
            mp.ResultDiff(
                "UPDATE", data={"n": 2}, before={"n": 1}, after={"n": 2}, row_signature=42
            ),
            mp.ResultDiff("aggregation", before=None, after={"c": 1}, row_signature=7),
            mp.ResultDiff("noop"),
        ],
        metadata={},
        sequence=3,
    )
    assert mp.encode_query_result(result) == EXAMPLE_D


def test_example_d_from_the_public_model() -> None:
    # The encoder takes models.QueryResult as it is; sequence comes from the host.
    from drasi_host import models

    result = models.QueryResult(
        "q1",
        datetime(2026, 11, 28, 7, 30, 0, 123456, tzinfo=timezone.utc),
        [
            models.ResultDiff.add({"name": "Ada"}),
            models.ResultDiff.update({"n": 2}, {"n": 1}, {"n": 2}),
            models.ResultDiff.aggregation(None, {"c": 1}),
            models.ResultDiff.noop(),
        ],
    )
    decoded = mp.decode_query_result(mp.encode_query_result(result, sequence=3))
    assert decoded.sequence == 3
    assert [d.type for d in decoded.results] == ["ADD", "UPDATE", "aggregation", "noop"]
    assert all(d.row_signature == 0 for d in decoded.results)


def _wrap_value(value_bytes: bytes) -> bytes:
    # A node insert whose one property "v" has the given ElementValue bytes.
    head = EXAMPLE_A.index(b"\xaa" + b"properties")
    tail = EXAMPLE_A.index(b"\xac" + b"timestamp_us")
    props = b"\xaaproperties\x81\xa6values\x81\xa1v" + value_bytes
    return EXAMPLE_A[:head] + props + EXAMPLE_A[tail:]


@pytest.mark.parametrize(("value", "raw"), VALUE_TABLE, ids=[repr(v) for v, _ in VALUE_TABLE])
def test_element_value_table(value: Any, raw: bytes) -> None:
    doc = _wrap_value(raw)
    event = mp.decode_source_event(doc)
    assert event.change is not None
    decoded = event.change.element.properties["v"]
    assert decoded == value and type(decoded) is type(value)
    if isinstance(value, datetime):
        assert decoded.utcoffset() == value.utcoffset()
    assert mp.encode_source_event(event) == doc


def test_control_futures_due() -> None:
    doc = msgpack.packb(
        {
            "source_id": "s1",
            "event": msgpack.unpackb(CONTROL_FUTURES_DUE),
            "timestamp_us": 5,
            "sequence": None,
            "source_position": None,
        }
    )
    assert CONTROL_FUTURES_DUE in doc
    event = mp.decode_source_event(doc)
    assert event.change is None
    assert event.control == mp.Control("FuturesDue", {})
    assert (event.op, event.label, event.entity_id) == (ChangeOp.UPDATE, "", "")
    assert mp.encode_source_event(event) == doc


def test_control_subscription_and_future() -> None:
    subscription = {
        "Control": {
            "Subscription": {
                "query_id": "q1",
                "query_node_id": "n1",
                "node_labels": ["A", "B"],
                "rel_labels": [],
                "operation": "Delete",
            }
        }
    }
    doc = msgpack.packb(
        {
            "source_id": "s",
            "event": subscription,
            "timestamp_us": 1,
            "sequence": 2,
            "source_position": None,
        }
    )
    event = mp.decode_source_event(doc)
    assert event.control == mp.Control(
        "Subscription",
        {
            "query_id": "q1",
            "query_node_id": "n1",
            "node_labels": ("A", "B"),
            "rel_labels": (),
            "operation": "Delete",
        },
    )
    assert mp.encode_source_event(event) == doc

    future = {
        "Change": {
            "Future": {
                "future_ref": {
                    "element_ref": {"source_id": "s", "element_id": "e9"},
                    "original_time": 10,
                    "due_time": 2**64 - 1,
                    "group_signature": 77,
                }
            }
        }
    }
    doc = msgpack.packb(
        {
            "source_id": "s",
            "event": future,
            "timestamp_us": -1,
            "sequence": None,
            "source_position": None,
        }
    )
    event = mp.decode_source_event(doc)
    assert event.change is None and event.control is not None
    assert event.control.kind == "Future"
    assert event.control.data["element_ref"] == mp.ElementReference("s", "e9")
    assert event.control.data["due_time"] == 2**64 - 1
    assert (event.op, event.entity_id) == (ChangeOp.UPDATE, "e9")
    assert mp.encode_source_event(event) == doc


# ---- section 12.6 alternatives ---------------------------------------------


def test_positional_structs_are_accepted() -> None:
    ref = ["s1", "42"]
    meta = [ref, ["Person"], 1_700_000_000_000]
    node = {"Node": [meta, [{"age": {"Integer": 36}}]]}
    doc = msgpack.packb(["s1", {"Change": {"Insert": [node]}}, 1_700_000_000_000_000, 7, None])
    canonical = mp.decode_source_event(EXAMPLE_A)
    event = mp.decode_source_event(doc)
    assert event.change is not None and canonical.change is not None
    assert event.change.element.reference == canonical.change.element.reference
    assert event.change.element.properties == {"age": 36}
    assert event.sequence == 7


def test_key_order_unknown_keys_and_missing_options() -> None:
    original = msgpack.unpackb(EXAMPLE_A)
    shuffled = dict(reversed(list(original.items())))
    shuffled["future_field"] = [1, 2]
    del shuffled["sequence"], shuffled["source_position"]
    event = mp.decode_source_event(msgpack.packb(shuffled))
    assert event.sequence is None and event.source_position is None
    assert event.change == mp.decode_source_event(EXAMPLE_A).change


def test_timestamp_alternatives() -> None:
    doc = msgpack.unpackb(EXAMPLE_D)
    for text, micro in (
        ("2026-11-28T07:30:00.123456+00:00", 123456),
        ("2026-11-28T09:30:00.123456789+02:00", 123456),
        ("2026-11-28T07:30:00Z", 0),
        ("2026-11-28T07:30:00.1Z", 100000),
    ):
        doc["timestamp"] = text
        result = mp.decode_query_result(msgpack.packb(doc))
        assert result.timestamp == datetime(2026, 11, 28, 7, 30, 0, micro, tzinfo=timezone.utc)
        assert result.timestamp.utcoffset() == timedelta(0)
    # sequence is #[serde(default)]
    del doc["sequence"]
    assert mp.decode_query_result(msgpack.packb(doc)).sequence == 0


def test_position_as_bin_is_accepted() -> None:
    doc = msgpack.unpackb(EXAMPLE_B)
    doc["source_position"] = b"\x01\x02\x03"
    assert mp.decode_source_event(msgpack.packb(doc, use_bin_type=True)).source_position == (
        b"\x01\x02\x03"
    )


def test_unit_variant_as_map_is_accepted() -> None:
    assert mp.decode_source_event(_wrap_value(msgpack.packb({"Null": None}))).change is not None


# ---- strictness -------------------------------------------------------------


def _mutate_a(path: list[Any], value: Any) -> bytes:
    doc = msgpack.unpackb(EXAMPLE_A)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return msgpack.packb(doc, use_bin_type=True)


_NODE = ["event", "Change", "Insert", "element", "Node"]
_PROPS = [*_NODE, "properties", "values"]

BAD_DOCUMENTS: list[tuple[str, bytes, str]] = [
    ("float under Integer", _mutate_a([*_PROPS, "age"], {"Integer": 36.0}), "values.age.Integer"),
    ("Integer over i64", _mutate_a([*_PROPS, "age"], {"Integer": 2**63}), "values.age.Integer"),
    ("string under Bool", _mutate_a([*_PROPS, "age"], {"Bool": "yes"}), "values.age.Bool"),
    ("unknown value tag", _mutate_a([*_PROPS, "age"], {"Decimal": "1"}), "values.age"),
    ("two-entry variant", _mutate_a([*_PROPS, "age"], {"Integer": 1, "Float": 1.0}), "values.age"),
    ("bin string", _mutate_a([*_PROPS, "name"], {"String": b"Ada"}), "values.name.String"),
    ("unknown change", _mutate_a(["event", "Change"], {"Upsert": {}}), "event.Change"),
    ("unknown event", _mutate_a(["event"], {"Other": 1}), "event"),
    ("missing labels", _mutate_a([*_NODE, "metadata"], {"reference": {}}), "Node.metadata"),
    ("label not str", _mutate_a([*_NODE, "metadata", "labels"], [1]), "labels[0]"),
    (
        "negative effective_from",
        _mutate_a([*_NODE, "metadata", "effective_from"], -1),
        "effective_from",
    ),
    ("bool as timestamp", _mutate_a(["timestamp_us"], True), "timestamp_us"),
    ("sequence negative", _mutate_a(["sequence"], -7), "sequence"),
    ("position byte 256", _mutate_a(["source_position"], [1, 256]), "source_position[1]"),
    ("properties without values", _mutate_a([*_NODE, "properties"], {"age": 1}), "Node.properties"),
    ("property key not str", _mutate_a([*_PROPS], {1: "Null"}), "properties.values"),
    (
        "zoned without offset",
        _mutate_a([*_PROPS, "age"], {"ZonedDateTime": "2024-06-15T13:45:30"}),
        "ZonedDateTime",
    ),
    (
        "local with offset",
        _mutate_a([*_PROPS, "age"], {"LocalDateTime": "2024-06-15T13:45:30Z"}),
        "LocalDateTime",
    ),
    (
        "bad date",
        _mutate_a([*_PROPS, "age"], {"LocalDateTime": "2024-02-30T00:00:00"}),
        "LocalDateTime",
    ),
    (
        "non-ASCII digits",
        _mutate_a([*_PROPS, "age"], {"LocalDateTime": "\uff12024-06-15T13:45:30"}),
        "LocalDateTime",
    ),
    ("Null with a value", _mutate_a([*_PROPS, "age"], {"Null": 1}), "age.Null"),
    ("document is an array of 2", msgpack.packb(["s1", {}]), "document"),
    ("document is a string", msgpack.packb("hello"), "document"),
    (
        "timestamp ext",
        EXAMPLE_A.replace(b"\xcf\x00\x06\x0a\x24\x18\x1e\x40\x00", b"\xd6\xff\x00\x00\x00\x01"),
        "timestamp_us",
    ),
]


@pytest.mark.parametrize(
    ("case", "doc", "field"), BAD_DOCUMENTS, ids=[c for c, _, _ in BAD_DOCUMENTS]
)
def test_bad_documents_name_the_field(case: str, doc: bytes, field: str) -> None:
    with pytest.raises(mp.PayloadFieldError) as info:
        mp.decode_source_event(doc)
    assert isinstance(info.value, PayloadFormatError)
    assert field in info.value.field or (field == "document" and info.value.field == ""), (
        case,
        info.value.field,
        str(info.value),
    )
    assert str(info.value).startswith("source event payload: ")


@pytest.mark.parametrize(
    "doc",
    [b"", EXAMPLE_A[:-1], EXAMPLE_A + b"\x00", b"\xc1", b"\x91" * 100_000 + b"\xc0"],
    ids=["empty", "truncated", "trailing", "reserved byte", "deep"],
)
def test_malformed_messagepack(doc: bytes) -> None:
    with pytest.raises(PayloadFormatError, match="source event payload"):
        mp.decode_source_event(doc)


def test_deeply_nested_values_are_refused() -> None:
    value: Any = None
    for _ in range(mp.MAX_DEPTH + 5):
        value = {"List": [value if value is not None else "Null"]}
    with pytest.raises(mp.PayloadFieldError, match="nested deeper"):
        mp.decode_source_event(_mutate_a([*_PROPS, "age"], value))


def test_oversize_payload_is_refused_unread() -> None:
    size = mp.MAX_FFI_PAYLOAD_BYTES + 1
    with mmap.mmap(-1, size) as big:  # never touched, so never resident
        view = memoryview(big)
        try:
            with pytest.raises(PayloadFormatError, match="exceeds the 268435456-byte limit"):
                mp.decode_source_event(view)
        finally:
            view.release()


def test_bad_query_results() -> None:
    doc = msgpack.unpackb(EXAMPLE_D)
    cases: list[tuple[Any, str]] = [
        ({**doc, "timestamp": "yesterday"}, "timestamp"),
        ({**doc, "timestamp": "2026-11-28T07:30:00"}, "timestamp"),
        ({**doc, "results": [{"type": "MERGE"}]}, "results[0].type"),
        ({**doc, "results": [{"type": "ADD"}]}, "results[0]"),
        ({**doc, "results": [{"type": "ADD", "data": b"x"}]}, "results[0].data"),
        ({**doc, "results": [{"type": "ADD", "data": {1: 2}}]}, "results[0].data"),
        (
            {**doc, "results": [{"type": "ADD", "data": 1, "row_signature": -1}]},
            "results[0].row_signature",
        ),
        ({k: v for k, v in doc.items() if k != "metadata"}, ""),
        ({**doc, "profiling": {"source_ns": "slow"}}, "profiling.source_ns"),
    ]
    for bad, field in cases:
        with pytest.raises(mp.PayloadFieldError) as info:
            mp.decode_query_result(msgpack.packb(bad, use_bin_type=True))
        assert info.value.field == field, (bad, str(info.value))


def test_encoder_refuses_what_a_plugin_cannot_decode() -> None:
    good = mp.decode_query_result(EXAMPLE_D)
    for bad_diff, field in [
        (mp.ResultDiff("ADD", data={"when": datetime(2020, 1, 1)}), "results[0].data.when"),
        (mp.ResultDiff("ADD", data={"blob": b"x"}), "results[0].data.blob"),
        (mp.ResultDiff("ADD", data={"n": 2**64}), "results[0].data.n"),
        (mp.ResultDiff("ADD", data={3: 1}), "results[0].data"),
    ]:
        bad = mp.QueryResult(good.query_id, good.timestamp, [bad_diff], {})
        with pytest.raises(mp.PayloadFieldError) as info:
            mp.encode_query_result(bad)
        assert info.value.field == field
    payload = mp.decode_source_event(EXAMPLE_A)
    assert payload.change is not None
    element = payload.change.element
    for props, field in [
        ({"x": 2**63}, "properties.x"),
        ({"x": object()}, "properties.x"),
        ({"x": {"y": [b"z"]}}, "properties.x.y[0]"),
    ]:
        change = mp.Change(ChangeOp.INSERT, mp.Element("node", element.reference, (), 0, props))
        with pytest.raises(mp.PayloadFieldError) as info:
            mp.encode_source_event(mp.SourceEventPayload("s", 0, change, None))
        assert info.value.field.endswith(field), info.value.field


def test_special_floats_keep_their_bits() -> None:
    for value in (float("inf"), float("-inf"), -0.0):
        doc = _wrap_value(msgpack.packb({"Float": value}))
        event = mp.decode_source_event(doc)
        assert event.change is not None
        assert repr(event.change.element.properties["v"]) == repr(value)
        assert mp.encode_source_event(event) == doc
    nan = _wrap_value(msgpack.packb({"Float": float("nan")}))
    assert mp.encode_source_event(mp.decode_source_event(nan)) == nan


# ---- generated documents ------------------------------------------------------

_text = st.text(max_size=8)
_u64 = st.integers(0, 2**64 - 1)
_i64 = st.integers(-(2**63), 2**63 - 1)
_labels = st.lists(st.text(min_size=1, max_size=6), max_size=3).map(tuple)
_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_naive = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30))


def _values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | _i64
        | st.floats(allow_nan=False)
        | st.text(max_size=8)
        | _naive
        | st.builds(lambda d, tz: d.replace(tzinfo=tz), _naive, _offsets)
    )
    return st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3),
        max_leaves=10,
    )


_props = st.dictionaries(_text, _values(), max_size=4)
_refs = st.builds(mp.ElementReference, _text, _text)


@st.composite
def _changes(draw: st.DrawFn) -> tuple[mp.Change | None, mp.Control | None]:
    kind = draw(st.sampled_from(["Insert", "Update", "Delete", "Future"]))
    if kind == "Future":
        data = {
            "element_ref": draw(_refs),
            "original_time": draw(_u64),
            "due_time": draw(_u64),
            "group_signature": draw(_u64),
        }
        return None, mp.Control("Future", data)
    ref, labels, eff = draw(_refs), draw(_labels), draw(_u64)
    if kind == "Delete":
        return mp.Change(ChangeOp.DELETE, mp.Element(None, ref, labels, eff, {})), None
    if draw(st.booleans()):
        element = mp.Element("node", ref, labels, eff, draw(_props))
    else:
        element = mp.Element(
            "relation", ref, labels, eff, draw(_props), in_node=draw(_refs), out_node=draw(_refs)
        )
    op = ChangeOp.INSERT if kind == "Insert" else ChangeOp.UPDATE
    return mp.Change(op, element), None


@st.composite
def _source_events(draw: st.DrawFn) -> mp.SourceEventPayload:
    roll = draw(st.integers(0, 9))
    if roll == 0:
        change, control = None, mp.Control("FuturesDue", {})
    elif roll == 1:
        change, control = (
            None,
            mp.Control(
                "Subscription",
                {
                    "query_id": draw(_text),
                    "query_node_id": draw(_text),
                    "node_labels": draw(_labels),
                    "rel_labels": draw(_labels),
                    "operation": draw(st.sampled_from(["Insert", "Update", "Delete"])),
                },
            ),
        )
    else:
        change, control = draw(_changes())
    return mp.SourceEventPayload(
        source_id=draw(_text),
        timestamp_us=draw(_i64),
        change=change,
        control=control,
        sequence=draw(st.none() | _u64),
        source_position=draw(st.none() | st.binary(max_size=6)),
    )


@st.composite
def _bootstrap_events(draw: st.DrawFn) -> mp.BootstrapEventPayload:
    change, control = draw(_changes())
    return mp.BootstrapEventPayload(draw(_text), draw(_i64), change, control, draw(_u64))


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_text, kids, max_size=3),
    max_leaves=8,
)
_diffs = st.one_of(
    st.builds(mp.ResultDiff, st.sampled_from(["ADD", "DELETE"]), data=_json, row_signature=_u64),
    st.builds(
        mp.ResultDiff,
        st.just("UPDATE"),
        data=_json,
        before=_json,
        after=_json,
        grouping_keys=st.none() | _labels,
        row_signature=_u64,
    ),
    st.builds(mp.ResultDiff, st.just("aggregation"), before=_json, after=_json, row_signature=_u64),
    st.just(mp.ResultDiff("noop")),
)
_utc = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda d: d.replace(tzinfo=timezone.utc)
)
_query_results = st.builds(
    mp.QueryResult,
    query_id=_text,
    timestamp=_utc,
    results=st.lists(_diffs, max_size=4),
    metadata=st.dictionaries(_text, _json, max_size=3),
    sequence=_u64,
)

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _same(a: Any, b: Any) -> bool:
    """Equality that also tells ints from floats and offsets apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


def _sorted_props(props: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted_value(props[k]) for k in sorted(props)}


def _sorted_value(value: Any) -> Any:
    if isinstance(value, dict):
        return _sorted_props(value)
    if isinstance(value, tuple | list):
        return [_sorted_value(v) for v in value]
    return value


@_SETTINGS
@given(_source_events())
def test_source_events_round_trip(event: mp.SourceEventPayload) -> None:
    raw = mp.encode_source_event(event)
    back = mp.decode_source_event(raw)
    assert mp.encode_source_event(back) == raw
    assert (back.source_id, back.timestamp_us, back.sequence, back.source_position) == (
        event.source_id,
        event.timestamp_us,
        event.sequence,
        event.source_position,
    )
    assert back.control == event.control
    if event.change is not None:
        assert back.change is not None
        assert back.change.op == event.change.op
        assert _same(back.change.element.properties, _sorted_props(event.change.element.properties))
        assert back.change.element.labels == event.change.element.labels


@_SETTINGS
@given(_bootstrap_events())
def test_bootstrap_events_round_trip(event: mp.BootstrapEventPayload) -> None:
    raw = mp.encode_bootstrap_event(event)
    back = mp.decode_bootstrap_event(raw)
    assert mp.encode_bootstrap_event(back) == raw
    assert back.sequence == event.sequence and back.control == event.control


@_SETTINGS
@given(_query_results)
def test_query_results_round_trip(result: mp.QueryResult) -> None:
    raw = mp.encode_query_result(result)
    back = mp.decode_query_result(raw)
    assert mp.encode_query_result(back) == raw
    assert back.timestamp == result.timestamp and back.sequence == result.sequence
    assert len(back.results) == len(result.results)
    for got, want in zip(back.results, result.results, strict=True):
        assert got.type == want.type and got.row_signature == want.row_signature
        assert _same(got.data, _plain(want.data))
        assert _same(got.after, _plain(want.after))


def _plain(value: Any) -> Any:
    # MessagePack has one array type: tuples come back as lists.
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _spec_value(value: Any) -> Any:
    """Section 12.2's ElementValue, built by hand for the independent encoder."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return {"Bool": value}
    if isinstance(value, int):
        return {"Integer": value}
    if isinstance(value, float):
        return {"Float": value}
    if isinstance(value, str):
        return {"String": value}
    if isinstance(value, list | tuple):
        return {"List": [_spec_value(v) for v in value]}
    if isinstance(value, dict):
        return {"Object": {"values": {k: _spec_value(value[k]) for k in sorted(value)}}}
    text = value.isoformat()
    if value.tzinfo is None:
        return {"LocalDateTime": text}
    return {"ZonedDateTime": text.replace("+00:00", "Z")}


@_SETTINGS
@given(_props)
def test_encoder_agrees_with_msgpack_package(props: dict[str, Any]) -> None:
    # isoformat prints 0 or 6 fraction digits; keep to those so the texts agree.
    def no_millis(v: Any) -> Any:
        if isinstance(v, datetime) and v.microsecond % 1000 == 0:
            return v.replace(microsecond=0)
        if isinstance(v, dict):
            return {k: no_millis(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [no_millis(x) for x in v]
        return v

    props = no_millis(props)
    element = mp.Element("node", S1_42, ("L",), 3, props)
    event = mp.SourceEventPayload("s1", 9, mp.Change(ChangeOp.UPDATE, element), None, 4, b"\x00")
    by_hand = {
        "source_id": "s1",
        "event": {
            "Change": {
                "Update": {
                    "element": {
                        "Node": {
                            "metadata": {
                                "reference": {"source_id": "s1", "element_id": "42"},
                                "labels": ["L"],
                                "effective_from": 3,
                            },
                            "properties": {
                                "values": {k: _spec_value(props[k]) for k in sorted(props)}
                            },
                        }
                    }
                }
            }
        },
        "timestamp_us": 9,
        "sequence": 4,
        "source_position": [0],
    }
    assert mp.encode_source_event(event) == msgpack.packb(by_hand, use_bin_type=True)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=64)
    | st.builds(
        lambda i, b: EXAMPLE_A[:i] + b + EXAMPLE_A[i + len(b) :],
        st.integers(0, len(EXAMPLE_A)),
        st.binary(max_size=4),
    )
)
def test_garbage_raises_only_payload_format_error(data: bytes) -> None:
    # Anything but a decoded document or PayloadFormatError fails the test.
    decoders = {
        mp.decode_source_event: mp.SourceEventPayload,
        mp.decode_bootstrap_event: mp.BootstrapEventPayload,
        mp.decode_query_result: mp.QueryResult,
    }
    for decode, kind in decoders.items():
        try:
            decoded: Any = decode(data)
        except PayloadFormatError as exc:
            assert str(exc)
        else:
            assert isinstance(decoded, kind)


def test_positional_query_result_is_accepted() -> None:
    # rmp_serde::to_vec writes structs as arrays in declaration order:
    # query_id, sequence, timestamp, results, metadata, profiling
    doc = msgpack.unpackb(EXAMPLE_D)
    positional = [doc["query_id"], 3, doc["timestamp"], doc["results"], {}]
    result = mp.decode_query_result(msgpack.packb(positional))
    assert result == mp.decode_query_result(EXAMPLE_D)
    assert mp.encode_query_result(result) == EXAMPLE_D


def test_variant_indices_are_refused_with_the_field() -> None:
    # the pre-1.0 rmp-serde form [index, [fields]] names no variant
    with pytest.raises(mp.PayloadFieldError) as info:
        mp.decode_source_event(_mutate_a([*_PROPS, "age"], {3: 36}))
    assert info.value.field == "event.Change.Insert.element.Node.properties.values.age"
    assert "named by a string" in str(info.value)
    with pytest.raises(mp.PayloadFieldError) as info:
        mp.decode_source_event(_mutate_a(["event"], [0, [{"Insert": {}}]]))
    assert info.value.field == "event"


def test_non_string_struct_keys_are_ignored_as_unknown() -> None:
    doc = msgpack.unpackb(EXAMPLE_A)
    doc[7] = "ignored"
    assert mp.decode_source_event(msgpack.packb(doc)) == mp.decode_source_event(EXAMPLE_A)


def test_error_paths_render_indices_and_keys() -> None:
    doc = msgpack.unpackb(EXAMPLE_A)
    doc["event"]["Change"]["Insert"]["element"]["Node"]["properties"]["values"]["tags"] = {
        "List": [{"Integer": 1}, {"List": ["Null", {"Bool": 3}]}]
    }
    with pytest.raises(mp.PayloadFieldError) as info:
        mp.decode_source_event(msgpack.packb(doc))
    assert info.value.field == (
        "event.Change.Insert.element.Node.properties.values.tags.List[1].List[1].Bool"
    )
    assert str(info.value) == (
        "source event payload: event.Change.Insert.element.Node.properties.values.tags"
        ".List[1].List[1].Bool: expected a bool, got integer"
    )


# ---- routing hints ------------------------------------------------------------


def _hints(payload: mp.SourceEventPayload | mp.BootstrapEventPayload) -> mp.EventHints:
    return mp.EventHints(
        payload.source_id,
        payload.op,
        payload.label,
        payload.entity_id,
        payload.timestamp_us,
        payload.sequence,
    )


def test_peek_examples() -> None:
    assert mp.peek_source_event(EXAMPLE_A) == mp.EventHints(
        "s1", ChangeOp.INSERT, "Person", "42", 1_700_000_000_000_000, 7
    )
    assert mp.peek_source_event(EXAMPLE_B) == mp.EventHints(
        "s1", ChangeOp.DELETE, "Person", "42", 1_700_000_000_001_000, None
    )
    assert mp.peek_bootstrap_event(EXAMPLE_C) == mp.EventHints(
        "s1", ChangeOp.INSERT, "KNOWS", "r1", 1_700_000_000_000_000, 1
    )


@_SETTINGS
@given(_source_events())
def test_peek_agrees_with_decode(event: mp.SourceEventPayload) -> None:
    raw = mp.encode_source_event(event)
    assert mp.peek_source_event(raw) == _hints(mp.decode_source_event(raw)) == _hints(event)


@_SETTINGS
@given(_bootstrap_events())
def test_peek_bootstrap_agrees_with_decode(event: mp.BootstrapEventPayload) -> None:
    raw = mp.encode_bootstrap_event(event)
    assert mp.peek_bootstrap_event(raw) == _hints(event)


def test_peek_falls_back_for_other_forms_and_errors() -> None:
    positional = msgpack.packb(
        ["s1", {"Change": {"Delete": [[["s1", "9"], ["L"], 5]]}}, 3, None, None]
    )
    assert mp.peek_source_event(positional) == mp.EventHints(
        "s1", ChangeOp.DELETE, "L", "9", 3, None
    )
    for doc in (b"", b"\xc1", EXAMPLE_A[:-1], _mutate_a(["event"], {"Change": {}, "Control": 1})):
        with pytest.raises(PayloadFormatError):
            mp.peek_source_event(doc)
    with pytest.raises(PayloadFormatError):
        mp.peek_source_event(_mutate_a(["timestamp_us"], 2**63))
    for _, doc, _ in BAD_DOCUMENTS:
        # the routing fields may be sound while the properties are not
        try:
            hints = mp.peek_source_event(doc)
        except PayloadFormatError:
            continue
        assert hints.source_id == "s1"


def test_encoder_names_the_field_of_bad_structures() -> None:
    good = mp.decode_source_event(EXAMPLE_A)
    assert good.change is not None
    element = good.change.element
    cases: list[tuple[mp.SourceEventPayload, str]] = [
        (
            mp.SourceEventPayload(
                "s1",
                0,
                mp.Change(ChangeOp.INSERT, mp.Element("node", element.reference, ("ok", 3), 0, {})),
                None,
            ),
            "event.Change.Insert.element.Node.metadata.labels[1]",
        ),
        (
            mp.SourceEventPayload(
                "s1",
                0,
                mp.Change(ChangeOp.INSERT, mp.Element("relation", element.reference, (), 0, {})),
                None,
            ),
            "event.Change.Insert.element.Relation",
        ),
        (
            mp.SourceEventPayload(
                "s1",
                0,
                mp.Change(
                    ChangeOp.DELETE, mp.Element(None, mp.ElementReference("s1", 5), (), 0, {})
                ),
                None,
            ),
            "event.Change.Delete.metadata.reference.element_id",
        ),
        (
            mp.SourceEventPayload("s1", 0, None, mp.Control("Future", {"due_time": 1})),
            "event.Change.Future.future_ref",
        ),
        (
            mp.SourceEventPayload(
                "s1",
                0,
                None,
                mp.Control(
                    "Subscription",
                    {
                        "query_id": "q",
                        "query_node_id": "n",
                        "node_labels": (),
                        "rel_labels": (),
                        "operation": "Upsert",
                    },
                ),
            ),
            "event.Control.Subscription.operation",
        ),
        (mp.SourceEventPayload(7, 0, good.change, None), "source_id"),
    ]
    for payload, field in cases:
        with pytest.raises(mp.PayloadFieldError) as info:
            mp.encode_source_event(payload)
        assert info.value.field == field, str(info.value)


@_SETTINGS
@given(_values())
def test_value_fast_path_matches_the_general_path(value: Any) -> None:
    # the fast path of _element_value must decode exactly as the general one
    wire = msgpack.unpackb(msgpack.packb(_spec_value(value)))
    fast = mp._element_value(wire, "v", 0)
    slow = mp._element_value_slow(wire, "v", 0)
    assert _same(fast, slow)
    assert _same(fast, _plain_sorted(value))


def _plain_sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_plain_sorted(v) for v in value]
    return value
