"""The data model: enum values of the ABI, value classes, credentials and the
lazily decoding event wrappers."""

from __future__ import annotations

import logging
import pickle
from datetime import datetime, timedelta, timezone

import attrs
import pytest

from drasi_host.errors import PayloadFormatError, PluginProtocolError
from drasi_host.models import (
    TRACE,
    BootstrapEvent,
    BootstrapRequest,
    ChangeOp,
    ComponentStatus,
    CredentialKind,
    Credentials,
    DispatchMode,
    Element,
    ElementReference,
    LifecycleEventType,
    LogLevel,
    QueryResult,
    ResultDiff,
    SourceChange,
    SourceEventWrapper,
    SubscriptionSettings,
)
from drasi_host.payloads import JsonCodec, MsgpackCodec

# --------------------------------------------------------------------- enums


@pytest.mark.parametrize(
    ("enum", "expected"),
    [
        (
            ComponentStatus,
            {
                "STOPPED": 0,
                "STARTING": 1,
                "RUNNING": 2,
                "STOPPING": 3,
                "RECONFIGURING": 4,
                "ERROR": 5,
                "ADDED": 6,
                "REMOVED": 7,
            },
        ),
        (DispatchMode, {"BROADCAST": 0, "CHANNEL": 1}),
        (ChangeOp, {"INSERT": 0, "UPDATE": 1, "DELETE": 2}),
        (LogLevel, {"ERROR": 0, "WARN": 1, "INFO": 2, "DEBUG": 3, "TRACE": 4}),
        (
            LifecycleEventType,
            {"STARTING": 0, "STARTED": 1, "STOPPING": 2, "STOPPED": 3, "ERROR": 4},
        ),
        (CredentialKind, {"USERNAME_PASSWORD": 0, "TOKEN": 1, "CERTIFICATE": 2}),
    ],
)
def test_enum_values_are_the_c_values(enum: type, expected: dict[str, int]) -> None:
    assert {member.name: int(member) for member in enum} == expected  # type: ignore[attr-defined]


def test_log_level_to_logging() -> None:
    assert LogLevel.ERROR.to_logging() == logging.ERROR
    assert LogLevel.WARN.to_logging() == logging.WARNING
    assert LogLevel.INFO.to_logging() == logging.INFO
    assert LogLevel.DEBUG.to_logging() == logging.DEBUG
    assert LogLevel.TRACE.to_logging() == TRACE == 5
    assert TRACE < logging.DEBUG


def test_change_op_wire_names() -> None:
    assert [op.wire for op in ChangeOp] == ["insert", "update", "delete"]
    for op in ChangeOp:
        assert ChangeOp.from_wire(op.wire) is op


@pytest.mark.parametrize("name", ["INSERT", "upsert", "", None, ["insert"]])
def test_change_op_from_unknown_wire_name(name: object) -> None:
    with pytest.raises(ValueError, match="unknown change operation"):
        ChangeOp.from_wire(name)  # type: ignore[arg-type]


def test_lifecycle_event_maps_to_status() -> None:
    assert LifecycleEventType.STARTED.to_status() is ComponentStatus.RUNNING
    assert LifecycleEventType.STOPPED.to_status() is ComponentStatus.STOPPED
    assert LifecycleEventType.ERROR.to_status() is ComponentStatus.ERROR


# ---------------------------------------------------------- value classes


def _node(properties: dict[str, object] | None = None) -> Element:
    return Element(
        "node", ElementReference("s1", "42"), ["Person"], 1_700_000_000_000, properties or {}
    )


def test_element_labels_become_a_tuple() -> None:
    element = _node()
    assert element.labels == ("Person",)
    assert element.in_node is None and element.out_node is None


def test_element_refuses_a_string_for_labels() -> None:
    with pytest.raises(TypeError, match="list of strings"):
        Element("node", ElementReference("s1", "1"), "Person", 0, {})


def test_element_refuses_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="type"):
        Element("edge", ElementReference("s1", "1"), [], 0, {})  # type: ignore[arg-type]


def test_element_type_none_only_for_the_metadata_of_a_delete() -> None:
    ref = ElementReference("s1", "1")
    element = Element(None, ref, ["L"], 5, {})
    assert element.type is None and element.labels == ("L",)
    assert hash(element) == hash(Element(None, ref, ("L",), 5, {}))
    with pytest.raises(ValueError, match="type None"):
        Element(None, ref, [], 0, {"a": 1})
    with pytest.raises(ValueError, match="type None"):
        Element(None, ref, [], 0, {}, in_node=ref)
    with pytest.raises(ValueError, match="type None"):
        Element(None, ref, [], 0, {}, out_node=ref)


@pytest.mark.parametrize("codec", [JsonCodec(), MsgpackCodec()], ids=["json", "msgpack"])
def test_a_typeless_element_has_no_0_4_document(codec: JsonCodec | MsgpackCodec) -> None:
    ref = ElementReference("s1", "1")
    change = SourceChange(ChangeOp.DELETE, Element(None, ref, [], 0, {}))
    with pytest.raises(PayloadFormatError, match="no type"):
        codec.encode_change(change)
    # nor does a 0.4 document with a null type decode to one
    document = {
        "op": "delete",
        "element": {
            "type": None,
            "reference": {"source_id": "s1", "element_id": "1"},
            "labels": [],
            "effective_from": 0,
        },
    }
    with pytest.raises(PluginProtocolError, match=r"element\.type"):
        codec.decode_change(codec.dump_document(document))


def test_element_is_frozen_and_hashable_despite_its_dict() -> None:
    a = _node({"name": "Ada"})
    b = _node({"name": "Ada"})
    c = _node({"name": "Grace"})
    assert a == b and hash(a) == hash(b)
    assert a != c  # properties take part in equality
    assert len({a, b, c}) == 2
    with pytest.raises(AttributeError):
        a.labels = ()  # type: ignore[misc]
    change = SourceChange(ChangeOp.INSERT, a)
    assert hash(change) == hash(SourceChange(ChangeOp.INSERT, b))


def test_result_diff_constructors() -> None:
    add = ResultDiff.add({"a": 1})
    assert (add.type, add.data, add.before, add.after, add.grouping_keys) == (
        "ADD",
        {"a": 1},
        None,
        None,
        None,
    )
    assert ResultDiff.delete({"a": 1}).type == "DELETE"
    update = ResultDiff.update({"a": 2}, {"a": 1}, {"a": 2}, grouping_keys=["k"])
    assert update.type == "UPDATE"
    assert (update.data, update.before, update.after) == ({"a": 2}, {"a": 1}, {"a": 2})
    assert update.grouping_keys == ("k",)
    assert ResultDiff.update({}, {}, {}).grouping_keys is None
    aggregation = ResultDiff.aggregation(None, {"sum": 3})
    assert (aggregation.type, aggregation.before, aggregation.after) == (
        "aggregation",
        None,
        {"sum": 3},
    )
    noop = ResultDiff.noop()
    assert noop.type == "noop" and noop.data is None
    assert hash(update) == hash(ResultDiff.update({"x": 0}, {}, {}, ["k"]))


def test_result_diff_refuses_an_unknown_type() -> None:
    with pytest.raises(ValueError, match="type"):
        ResultDiff("add")  # type: ignore[arg-type]


def test_query_result_metadata_default_is_not_shared() -> None:
    now = datetime.now(timezone.utc)
    first = QueryResult("q1", now, [])
    second = QueryResult("q1", now, [])
    first.metadata["k"] = 1
    assert second.metadata == {}


def test_query_result_naive_timestamp_is_utc() -> None:
    result = QueryResult("q1", datetime(2026, 11, 28, 7, 30), [ResultDiff.noop()])
    assert result.timestamp.tzinfo is timezone.utc
    assert result.timestamp == datetime(2026, 11, 28, 7, 30, tzinfo=timezone.utc)
    plus_two = timezone(timedelta(hours=2))
    aware = QueryResult("q1", datetime(2026, 1, 1, 9, 0, tzinfo=plus_two), [])
    assert aware.timestamp.tzinfo is plus_two  # aware values are kept
    with pytest.raises(TypeError, match="datetime"):
        QueryResult("q1", "2026-01-01T00:00:00Z", [])  # type: ignore[arg-type]


def test_label_lists_become_tuples() -> None:
    settings = SubscriptionSettings("s1", "q1", True, ["Person"], [])
    assert settings.nodes == ("Person",) and settings.relations == ()
    request = BootstrapRequest("q1", ["A", "B"], ["R"], "req-1")
    assert request.node_labels == ("A", "B") and request.relation_labels == ("R",)
    with pytest.raises(TypeError):
        SubscriptionSettings("s1", "q1", True, "Person", [])


# --------------------------------------------------------------- credentials


def test_credentials_kinds_and_fields() -> None:
    up = Credentials.username_password("alice", "pw-123")
    assert (up.kind, up.username, up.password, up.token) == (
        CredentialKind.USERNAME_PASSWORD,
        "alice",
        "pw-123",
        None,
    )
    tok = Credentials.token("bob", "tok-456")
    assert (tok.kind, tok.username, tok.token, tok.password) == (
        CredentialKind.TOKEN,
        "bob",
        "tok-456",
        None,
    )
    cert = Credentials.certificate("CERT-PEM", "KEY-PEM")
    assert (cert.kind, cert.cert_pem, cert.key_pem, cert.username) == (
        CredentialKind.CERTIFICATE,
        "CERT-PEM",
        "KEY-PEM",
        None,
    )
    assert Credentials.certificate("C", "K", username="carol").username == "carol"


def test_credentials_repr_hides_secrets() -> None:
    for credentials, secret in [
        (Credentials.username_password("alice", "s3cret-pw"), "s3cret-pw"),
        (Credentials.token("bob", "s3cret-token"), "s3cret-token"),
        (Credentials.certificate("CERTIFICATE", "PRIVATE-KEY-BODY"), "PRIVATE-KEY-BODY"),
    ]:
        text = repr(credentials)
        assert secret not in text
        assert credentials.kind.name in text
        assert secret not in str(credentials)
    assert "alice" in repr(Credentials.username_password("alice", "x"))


def test_credentials_need_their_fields() -> None:
    with pytest.raises(ValueError, match="password"):
        Credentials(CredentialKind.USERNAME_PASSWORD, username="a")
    with pytest.raises(ValueError, match="token"):
        Credentials(CredentialKind.TOKEN, username="a")
    with pytest.raises(ValueError, match="key_pem"):
        Credentials(CredentialKind.CERTIFICATE, cert_pem="c")
    with pytest.raises(ValueError):
        Credentials(7)  # type: ignore[arg-type]


def test_credentials_are_immutable_values() -> None:
    tok = Credentials.token("bob", "t")
    assert tok == Credentials.token("bob", "t")
    assert tok != Credentials.token("bob", "u")
    assert hash(tok) == hash(Credentials.token("bob", "t"))
    assert pickle.loads(pickle.dumps(tok)) == tok
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        tok.username = "eve"


# --------------------------------------------------------- event wrappers


class CountingCodec(JsonCodec):
    """The JSON codec, counting how often it decodes."""

    def __init__(self) -> None:
        self.decodes = 0

    def decode_change(self, data: bytes) -> SourceChange:
        self.decodes += 1
        return super().decode_change(data)


def _payload(change: SourceChange) -> bytes:
    return JsonCodec().encode_change(change)


def test_change_is_decoded_lazily_and_once() -> None:
    change = SourceChange(ChangeOp.UPDATE, _node({"age": 36}))
    codec = CountingCodec()
    event = SourceEventWrapper("s1", 10, ChangeOp.UPDATE, "Person", "42", _payload(change), codec)
    assert codec.decodes == 0
    assert (event.source_id, event.timestamp_us, event.op, event.label, event.entity_id) == (
        "s1",
        10,
        ChangeOp.UPDATE,
        "Person",
        "42",
    )
    assert "s1" in repr(event) and "Person" in repr(event)
    assert codec.decodes == 0  # repr does not decode
    assert event.change == change
    assert event.change is event.change
    assert codec.decodes == 1


def test_change_is_none_for_opaque_events() -> None:
    assert SourceEventWrapper("s1", 0, ChangeOp.INSERT, "L", "1", None, None).change is None
    codec = CountingCodec()
    assert SourceEventWrapper("s1", 0, ChangeOp.INSERT, "L", "1", None, codec).change is None
    assert SourceEventWrapper("s1", 0, ChangeOp.INSERT, "L", "1", b"{}", None).change is None
    assert codec.decodes == 0


def test_undecodable_change_raises_every_time() -> None:
    codec = CountingCodec()
    event = SourceEventWrapper(
        "src-7", 0, ChangeOp.INSERT, "L", "e-9", b'{"op": "insert", "element": 3}', codec
    )
    for attempt in (1, 2):
        with pytest.raises(PluginProtocolError) as info:
            _ = event.change
        message = str(info.value)
        assert "src-7" in message and "e-9" in message and "element" in message
        assert codec.decodes == attempt


def test_events_have_no_instance_dict() -> None:
    event = SourceEventWrapper("s1", 0, ChangeOp.INSERT, "L", "1", None, None)
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]


def test_payload_for_reuses_or_reencodes() -> None:
    change = SourceChange(ChangeOp.INSERT, _node({"x": [1, 2]}))
    payload = _payload(change)
    codec = CountingCodec()
    event = SourceEventWrapper("s1", 0, ChangeOp.INSERT, "Person", "42", payload, codec)
    assert event.payload_for(JsonCodec()) is payload
    assert codec.decodes == 0
    packed = event.payload_for(MsgpackCodec())
    assert MsgpackCodec().decode_change(packed) == change
    opaque = SourceEventWrapper("s1", 0, ChangeOp.INSERT, "Person", "42", None, None)
    with pytest.raises(PayloadFormatError, match="opaque"):
        opaque.payload_for(JsonCodec())


def test_bootstrap_event_fields() -> None:
    change = SourceChange(ChangeOp.INSERT, _node())
    codec = CountingCodec()
    event = BootstrapEvent("s1", 5, ChangeOp.INSERT, "Person", "42", _payload(change), codec, 17)
    assert event.sequence == 17
    assert "sequence=17" in repr(event)
    assert codec.decodes == 0
    assert event.change == change and codec.decodes == 1


def test_bootstrap_event_from_change() -> None:
    relation = Element(
        "relation",
        ElementReference("origin", "r1"),
        ["KNOWS", "LIKES"],
        1000,
        {"since": 2020},
        in_node=ElementReference("origin", "a"),
        out_node=ElementReference("origin", "b"),
    )
    change = SourceChange(ChangeOp.INSERT, relation)
    event = BootstrapEvent.from_change(change, sequence=3, timestamp_us=99)
    assert (event.source_id, event.timestamp_us, event.op, event.label, event.entity_id) == (
        "origin",
        99,
        ChangeOp.INSERT,
        "KNOWS",
        "r1",
    )
    assert event.sequence == 3
    assert event.payload is None
    assert event.change is change
    assert JsonCodec().decode_change(event.payload_for(JsonCodec())) == change

    unlabelled = SourceChange(
        ChangeOp.DELETE, Element("node", ElementReference("o", "n"), [], 0, {})
    )
    before = datetime.now(timezone.utc).timestamp() * 1_000_000
    other = BootstrapEvent.from_change(unlabelled, source_id="override")
    after = datetime.now(timezone.utc).timestamp() * 1_000_000
    assert other.source_id == "override" and other.label == "" and other.sequence == 0
    assert before - 1 <= other.timestamp_us <= after + 1
