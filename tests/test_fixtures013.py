"""The FFI 0.13 fixture plugins (``plugins_fixture/v013/``).

Built by ``build_fixtures_013`` with the machine's compiler, then driven two
ways: by the C selftest host (under valgrind with leak checking when it is
installed), and from Python through the compiled ``drasi_host._ffi013``
declarations, decoding the C plugins' MessagePack with
``drasi_host._msgpack013`` and feeding the C reaction documents encoded by it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from abi013_helpers import Plugin013 as Plugin
from abi013_helpers import close_plugin013, compile_ffi013, open_plugin013
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drasi_host import _msgpack013 as mp
from drasi_host.errors import PayloadFormatError
from drasi_host.models import ChangeOp

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")

MAX = mp.MAX_FFI_PAYLOAD_BYTES


@pytest.fixture(scope="module")
def built013(tmp_path_factory: pytest.TempPathFactory, fixture_builder: Any) -> dict[str, Path]:
    shared = os.environ.get("DRASI_FIXTURE_BUILD_DIR")
    out = Path(shared) / "v013" if shared else tmp_path_factory.mktemp("plugins013")
    built: dict[str, Path] = fixture_builder.build_fixtures_013(out)
    return built


def test_build_products(built013: dict[str, Path], fixture_builder: Any) -> None:
    assert set(built013) == set(fixture_builder.FIXTURES_013)
    assert all(p.exists() for p in built013.values())
    with pytest.raises(KeyError, match=r"unknown 0\.13 fixture"):
        fixture_builder.build_fixtures_013(built013["v013_all"].parent, only=["nope"])


def test_selftest013(built013: dict[str, Path]) -> None:
    cmd = [str(built013["selftest013"]), str(built013["v013_all"].parent)]
    if shutil.which("valgrind"):
        cmd = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 failures" in proc.stdout
    assert int(proc.stdout.split(":")[1].split()[0]) > 200  # the checks really ran


# ---- a Python host over drasi_host._ffi013 ---------------------------------


@pytest.fixture(scope="module")
def ffi013(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return compile_ffi013(tmp_path_factory.mktemp("ffi013"))


@pytest.fixture(scope="module")
def plugin(built013: dict[str, Path], ffi013: Any) -> Iterator[Plugin]:
    ffi, lib = ffi013.ffi, ffi013.lib
    p = open_plugin013(ffi, lib, built013["v013_all"])
    meta = p.fn("DrasiPluginMetadataFn", "drasi_plugin_metadata")()
    assert ffi.string(meta.sdk_version.ptr, meta.sdk_version.len) == b"0.13.0"
    p.reg.set_log_level(lib.dh13_log_filter_clamp(9))
    yield p
    stats = close_plugin013(p)
    assert stats["factories_dropped"] == 5


def _stream(p: Plugin, vt: Any) -> list[tuple[int, int, bytes | None, int]]:
    """Subscribe and collect every event as (op hint, length, bytes, leaked)."""
    ffi, lib = p.ffi, p.lib
    receiver = p.subscribe(vt)
    got: list[tuple[int, int, bytes | None, int]] = []
    done = threading.Event()

    @ffi.callback("FfiChangePushCallbackFn")
    def on_event(ctx: Any, ev: Any) -> bool:
        if ev == ffi.NULL:
            done.set()
            return False
        n = ev.payload_len
        data = None
        if ev.payload_ptr != ffi.NULL and 0 < n <= MAX:
            data = ffi.buffer(ev.payload_ptr, n)[:]
        op = int(ev.op)
        got.append((op, n, data, lib.dh13_source_event_release(ev)))
        return True

    receiver.start_push_fn(receiver.state, on_event, ffi.NULL)
    assert done.wait(20)
    receiver.drop_fn(receiver.state)
    return got


def test_python_decodes_the_c_source(plugin: Plugin) -> None:
    vt = plugin.create_source({"count": 8, "mode": "control"})
    events = _stream(plugin, vt)
    vt.drop_fn(vt.state)
    assert len(events) == 10 and all(leaked == 0 for *_, leaked in events)
    decoded = [mp.decode_source_event(data) for _, _, data, _ in events if data is not None]
    assert [e.sequence for e in decoded] == list(range(1, 11))
    assert [int(e.op) for e in decoded] == [op for op, *_ in events]  # hint == payload
    assert [e.op for e in decoded[:4]] == [
        ChangeOp.INSERT,
        ChangeOp.UPDATE,
        ChangeOp.INSERT,
        ChangeOp.DELETE,
    ]
    first = decoded[0].change
    assert first is not None
    assert first.element.type == "node" and first.element.labels == ("Person",)
    assert first.element.properties == {
        "addr": {"city": "Oslo"},
        "age": 0,
        "name": "p0",
        "score": 0.5,
        "tags": [1, None],
        "when": datetime(2024, 6, 15, 13, 45, 30),
    }
    assert type(decoded[1].change.element.properties["score"]) is float  # type: ignore[union-attr]
    relation = decoded[2].change
    assert relation is not None and relation.element.type == "relation"
    since = relation.element.properties["since"]
    assert since.utcoffset() == timedelta(hours=2)
    delete = decoded[3].change
    assert delete is not None and delete.element.type is None
    assert delete.element.properties == {} and delete.element.reference.element_id == "n0"
    assert decoded[1].source_position == bytes([1, 0xFF]) and decoded[0].source_position is None
    assert decoded[8].control == mp.Control("FuturesDue", {})
    future = decoded[9].control
    assert future is not None and future.kind == "Future"
    assert future.data["group_signature"] == 0xFEEDFACECAFEBEEF
    assert decoded[9].entity_id == "n0"
    # the routing hints agree with the full decode and with the plugin's op hint
    for (op, _, data, _), event in zip(events, decoded, strict=True):
        assert data is not None
        hints = mp.peek_source_event(data)
        assert (hints.op, hints.label, hints.entity_id) == (event.op, event.label, event.entity_id)
        assert int(hints.op) == op
    # the canonical encoder reproduces the C writer's bytes
    assert [mp.encode_source_event(e) for e in decoded] == [d for _, _, d, _ in events]


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("badmsgpack", "malformed"),
        ("wrongtags", "values.age.Integer"),
        ("oversize", "oversize"),
        ("nulldrop", "leak"),
        ("nullpayload", "empty"),
    ],
)
def test_hostile_sources_give_typed_errors(plugin: Plugin, mode: str, check: str) -> None:
    vt = plugin.create_source({"count": 2, "mode": mode})
    events = _stream(plugin, vt)
    vt.drop_fn(vt.state)
    (_op, length, data, leaked), *good = events
    for _, _, payload, _ in good:
        assert payload is not None and mp.decode_source_event(payload).change is not None
    if check == "oversize":
        assert length > MAX and data is None and leaked == 0
    elif check == "leak":
        assert leaked == 1  # NULL drop fn: left alone, no crash
        assert data is not None
        with pytest.raises(PayloadFormatError):
            mp.decode_source_event(data)
    elif check == "empty":
        assert length == 0 and data is None
        with pytest.raises(PayloadFormatError, match="empty"):
            mp.decode_source_event(b"")
    else:
        assert data is not None
        with pytest.raises(mp.PayloadFieldError) as info:
            mp.decode_source_event(data)
        if check != "malformed":
            assert check in info.value.field
        else:
            assert "not valid MessagePack" in str(info.value)


def test_create_errors_carry_the_plugin_text(plugin: Plugin) -> None:
    factory = plugin.reg.source_plugins[0]
    res = factory.create_source_fn(
        factory.state, plugin.s("x"), plugin.s('{"mode":"fail","reason":"no disk"}'), False
    )
    assert res.error_code == 1 and res.ptr == plugin.ffi.NULL
    assert plugin.take(res.error_msg) == "fixture013: create refused: no disk"
    res = factory.create_source_fn(factory.state, plugin.s("x"), plugin.s('{"secret":"a"}'), False)
    assert res.error_code == 1
    assert "no config resolver for secret a" in (plugin.take(res.error_msg) or "")


def _reaction(plugin: Plugin) -> Any:
    factory = plugin.reg.reaction_plugins[0]
    res = factory.create_reaction_fn(
        factory.state, plugin.s("r1"), plugin.s('["q1"]'), plugin.s("{}"), False
    )
    assert res.error_code == 0
    vt = plugin.ffi.new("ReactionVtable *", plugin.ffi.cast("ReactionVtable *", res.ptr)[0])
    plugin.lib.free(res.ptr)
    return vt


def _serve(plugin: Plugin, documents: list[bytes]) -> dict[str, int]:
    """Run one reaction over the documents; returns the counter deltas."""
    ffi, lib = plugin.ffi, plugin.lib
    vt = _reaction(plugin)
    before = plugin.stats()
    pending = list(documents)
    sentinel = threading.Event()

    @ffi.callback("FfiResultPushCallbackFn")
    def pull(ctx: Any, exit_sentinel: Any) -> Any:
        if exit_sentinel != ffi.NULL:
            sentinel.set()
            return ffi.NULL
        if not pending:
            return ffi.NULL
        doc = pending.pop(0)
        return lib.dh13_query_result_new(doc, len(doc))

    vt.start_result_push_fn(vt.state, pull, ffi.NULL)
    assert sentinel.wait(20)
    vt.drop_fn(vt.state)
    after = plugin.stats()
    return {k: after[k] - before[k] for k in after}


def test_c_reaction_accepts_python_results(plugin: Plugin) -> None:
    from drasi_host import models

    result = models.QueryResult(
        "q1",
        datetime(2026, 11, 28, 7, 30, tzinfo=timezone.utc),
        [models.ResultDiff.add({"n": 1}), models.ResultDiff.noop()],
    )
    docs = [mp.encode_query_result(result, sequence=i) for i in range(5)]
    delta = _serve(plugin, [*docs, b"\xc1", docs[0]])
    assert delta["results_received"] == 7
    assert delta["results_decoded"] == 6 and delta["results_invalid"] == 1
    assert delta["result_diffs"] == 12 and delta["exit_sentinels_sent"] == 1


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.builds(
            mp.ResultDiff,
            st.sampled_from(["ADD", "DELETE", "UPDATE", "aggregation", "noop"]),
            data=_json,
            before=_json,
            after=_json,
            row_signature=st.integers(0, 2**64 - 1),
        ),
        max_size=5,
    )
)
def test_c_reaction_accepts_generated_results(plugin: Plugin, diffs: list[mp.ResultDiff]) -> None:
    stamp = datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)
    doc = mp.encode_query_result(mp.QueryResult("q", stamp, diffs, {"k": [1, "v"]}, sequence=9))
    delta = _serve(plugin, [doc])
    assert (delta["results_decoded"], delta["results_invalid"]) == (1, 0)
    assert delta["result_diffs"] == len(diffs)


@pytest.mark.parametrize(
    ("config", "expect_count", "expect_error"),
    [
        ({"count": 4}, 4, None),
        ({"count": 1, "mode": "bootfail"}, -1, "fixture013 bootstrap failed: source unavailable"),
    ],
)
def test_python_drives_the_c_bootstrap_provider(
    plugin: Plugin, config: dict[str, Any], expect_count: int, expect_error: str | None
) -> None:
    ffi, lib = plugin.ffi, plugin.lib
    provider, events, result = plugin.start_bootstrap(config)
    records: list[bytes] = []
    outcome: dict[str, Any] = {}
    ended, resulted = threading.Event(), threading.Event()

    @ffi.callback("FfiBootstrapPushCallbackFn")
    def on_record(ctx: Any, ev: Any) -> bool:
        if ev == ffi.NULL:
            ended.set()
            return False
        records.append(ffi.buffer(ev.payload_ptr, ev.payload_len)[:])
        lib.dh13_bootstrap_event_release(ev)
        return True

    @ffi.callback("FfiBootstrapResultCallbackFn")
    def on_result(ctx: Any, r: Any) -> None:
        outcome["count"] = int(r.event_count)
        if r.error_ptr != ffi.NULL and r.error_len:
            outcome["error"] = ffi.buffer(r.error_ptr, r.error_len)[:].decode()
        if r.source_position_ptr != ffi.NULL and r.source_position_len:
            outcome["position"] = ffi.buffer(r.source_position_ptr, r.source_position_len)[:]
        lib.dh13_bootstrap_result_release(r)
        resulted.set()

    result.start_fn(result.state, on_result, ffi.NULL)
    result.drop_fn(result.state)
    events.start_push_fn(events.state, on_record, ffi.NULL)
    assert ended.wait(20) and resulted.wait(20)
    events.drop_fn(events.state)
    provider.drop_fn(provider.state)
    decoded = [mp.decode_bootstrap_event(r) for r in records]
    assert [d.sequence for d in decoded] == list(range(1, len(records) + 1))
    assert all(d.change and d.change.element.labels == ("Boot",) for d in decoded)
    assert [mp.encode_bootstrap_event(d) for d in decoded] == records
    assert outcome["count"] == expect_count
    assert outcome.get("error") == expect_error
    if expect_error is None:
        assert outcome["position"] == bytes([0xAA, 4])


def test_identity_and_secret_store_from_python(plugin: Plugin) -> None:
    ffi = plugin.ffi
    idf = plugin.reg.identity_provider_plugins[0]
    block = idf.create_identity_provider_fn(idf.state, plugin.s('{"token":"tk"}'))
    assert block != ffi.NULL
    vt = ffi.new("IdentityProviderVtable *", block[0])
    plugin.lib.free(block)
    context = b'{"host":"db.example"}'
    res = vt.get_credentials_fn(vt.state, context, len(context))
    assert res.error_code == 0 and res.credentials.credential_type == 1
    assert plugin.take(res.credentials.field1) == "fixture-user"
    assert plugin.take(res.credentials.field2) == 'tk|{"host":"db.example"}'
    clone = vt.clone_fn(vt.state)
    vt.drop_fn(clone)
    vt.drop_fn(vt.state)
    assert plugin.stats()["identity_states_alive"] == 0

    sf = plugin.reg.secret_store_plugins[0]
    store = sf.create_secret_store_fn(sf.state, plugin.s('{"prefix":"x-"}'))
    svt = ffi.new("SecretStoreProviderVtable *", store[0])
    plugin.lib.free(store)
    got = svt.get_secret_fn(svt.state, plugin.s("db"))
    assert got.error_code == 0 and plugin.take(got.value) == "x-db"
    got = svt.get_secret_fn(svt.state, plugin.s("missing"))
    assert got.error_code == 1 and got.value == ffi.NULL
    assert plugin.take(got.error_msg) == "fixture013-secrets: no secret named missing"
    svt.drop_fn(svt.state)
