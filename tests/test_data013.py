"""The 0.13 data paths against the C fixture plugin (``plugins_fixture/v013``).

The plugin's vtables are driven by hand through ``drasi_host._ffi013`` (the
proxies do not create 0.13 components here): its source pushes into an
:class:`~drasi_host._events013.EventChannel013` through the host's 0.13 push
callback, its bootstrap provider streams into a 0.13 bootstrap channel and
delivers its result through the host's result callback, and its reaction
pulls 0.13 ``FfiQueryResult`` envelopes from a
:class:`~drasi_host._events013.ResultChannel013` and makes the exit call.
The fixture counts every payload it creates and releases, so the host's
"exactly once" is checked by the plugin itself.
"""

from __future__ import annotations

import collections
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from abi013_helpers import Plugin013 as Plugin
from abi013_helpers import close_plugin013, open_plugin013

from drasi_host import _abi013
from drasi_host._abi import lib as lib04
from drasi_host._abi013 import ffi, lib
from drasi_host._events013 import RESULT_CODEC_013, EventChannel013, ResultChannel013
from drasi_host.errors import PluginCallError, PluginProtocolError
from drasi_host.events import BootstrapEvent, ControlEvent, SourceEventWrapper
from drasi_host.models import ChangeOp, ElementReference, QueryResult, ResultDiff

pytestmark = [
    pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler"),
]

TIMEOUT = 20.0


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory, fixture_builder: Any) -> Iterator[Plugin]:
    shared = os.environ.get("DRASI_FIXTURE_BUILD_DIR")
    out = Path(shared) / "v013" if shared else tmp_path_factory.mktemp("plugins013")
    path = fixture_builder.build_fixtures_013(out, only=["v013_all"])["v013_all"]
    p = open_plugin013(ffi, lib, path)
    yield p
    close_plugin013(p)


async def _collect(channel: EventChannel013) -> list[Any]:
    got: list[Any] = []
    with anyio.fail_after(TIMEOUT):
        while True:
            out: collections.deque[Any] = collections.deque()
            channel.drain(out)
            got.extend(out)
            if channel.ended and not channel.has_pending:
                return got
            if not out:
                await channel.wait()


@pytest.mark.anyio
async def test_the_c_source_feeds_a_0_13_channel(plugin: Plugin) -> None:
    before = plugin.stats()
    vt = plugin.create_source({"count": 8, "mode": "control"})
    receiver = plugin.subscribe(vt)
    channel = EventChannel013(lib04.DH_KIND_SOURCE_EVENTS, "fixture source", capacity=4)
    try:
        receiver.start_push_fn(receiver.state, _abi013.change_push_ptr(), channel.ctx)
        events = await _collect(channel)
    finally:
        receiver.drop_fn(receiver.state)
        vt.drop_fn(vt.state)
        channel.release()
    assert len(events) == 10 and all(type(e) is SourceEventWrapper for e in events)
    assert [e.op for e in events[:4]] == [
        ChangeOp.INSERT,
        ChangeOp.UPDATE,
        ChangeOp.INSERT,
        ChangeOp.DELETE,
    ]
    first = events[0]
    assert (first.source_id, first.label, first.entity_id) == ("s1", "Person", "n0")
    assert first.change.element.type == "node"
    assert first.change.element.properties["when"] == datetime(2024, 6, 15, 13, 45, 30)
    assert type(events[1].change.element.properties["score"]) is float
    assert events[2].change.element.type == "relation"
    delete = events[3].change.element
    assert delete.type is None and delete.properties == {} and delete.reference.element_id == "n0"
    assert events[8].change is None and events[8].control == ControlEvent("FuturesDue", {})
    future = events[9].control
    assert events[9].change is None and future is not None and future.kind == "Future"
    assert future.data["element_ref"] == ElementReference("s1", "n0")
    assert future.data["group_signature"] == 0xFEEDFACECAFEBEEF
    plugin.stats_lib.drasi_fixture013_join_threads()
    after = plugin.stats()
    created = after["payloads_created"] - before["payloads_created"]
    assert created >= 10
    assert after["payloads_released"] - before["payloads_released"] == created


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("badmsgpack", "not valid MessagePack"),
        ("wrongtags", "values.age.Integer"),
        ("oversize", "exceeds the maximum"),
        ("nullpayload", "empty or NULL payload"),
    ],
)
async def test_hostile_c_sources_are_reported_and_the_stream_goes_on(
    plugin: Plugin, mode: str, message: str
) -> None:
    before = plugin.stats()
    vt = plugin.create_source({"count": 2, "mode": mode})
    receiver = plugin.subscribe(vt)
    channel = EventChannel013(lib04.DH_KIND_SOURCE_EVENTS, "hostile")
    try:
        receiver.start_push_fn(receiver.state, _abi013.change_push_ptr(), channel.ctx)
        items = await _collect(channel)
    finally:
        receiver.drop_fn(receiver.state)
        vt.drop_fn(vt.state)
        channel.release()
    error, *good = items
    assert isinstance(error, PluginProtocolError) and message in str(error)
    assert good and all(isinstance(e, SourceEventWrapper) for e in good)
    plugin.stats_lib.drasi_fixture013_join_threads()
    after = plugin.stats()
    assert after["payloads_created"] - before["payloads_created"] == (
        after["payloads_released"] - before["payloads_released"]
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("config", "count", "error"),
    [
        ({"count": 4}, 4, None),
        ({"count": 1, "mode": "bootfail"}, -1, "fixture013 bootstrap failed: source unavailable"),
    ],
)
async def test_the_c_bootstrap_provider_streams_and_ends_with_its_result(
    plugin: Plugin, config: dict[str, Any], count: int, error: str | None
) -> None:
    provider, events, result = plugin.start_bootstrap(config)
    channel = EventChannel013(lib04.DH_KIND_BOOTSTRAP_EVENTS, "fixture bootstrap", capacity=2)
    try:
        result.start_fn(result.state, _abi013.bootstrap_result_ptr(), channel.ctx)
        result.drop_fn(result.state)
        events.start_push_fn(events.state, _abi013.bootstrap_push_ptr(), channel.ctx)
        records = await _collect(channel)
        outcome = await channel.wait_outcome(TIMEOUT)
    finally:
        events.drop_fn(events.state)
        provider.drop_fn(provider.state)
        channel.release()
    assert all(type(r) is BootstrapEvent for r in records)
    assert [r.sequence for r in records] == list(range(1, len(records) + 1))
    assert all(r.label == "Boot" and r.change is not None for r in records)
    assert outcome is not None and outcome.event_count == count
    if error is None:
        assert outcome.check("bootstrap") == count == len(records)
        assert outcome.position == bytes([0xAA, 4]) and outcome.error is None
    else:
        with pytest.raises(PluginCallError, match="source unavailable") as info:
            outcome.check("bootstrap of q1")
        assert info.value.plugin_message == error and info.value.code == -1


@pytest.mark.anyio
async def test_the_c_reaction_pulls_0_13_results_and_exits(plugin: Plugin) -> None:
    factory = plugin.reg.reaction_plugins[0]
    res = factory.create_reaction_fn(
        factory.state, plugin.s("r1"), plugin.s('["q1"]'), plugin.s("{}"), False
    )
    assert res.error_code == 0
    vt = ffi.new("ReactionVtable *", ffi.cast("ReactionVtable *", res.ptr)[0])
    lib.free(res.ptr)
    before = plugin.stats()
    channel = ResultChannel013()
    key = channel.open(4)
    stamp = datetime(2026, 11, 28, 7, 30, tzinfo=timezone.utc)
    results = [
        QueryResult("q1", stamp, [ResultDiff.add({"n": i}), ResultDiff.noop()]) for i in range(9)
    ]
    try:
        vt.start_result_push_fn(vt.state, _abi013.result_push_ptr(), ffi.cast("void *", key))
        documents = [RESULT_CODEC_013.encode_query_result(r) for r in results]
        documents.insert(3, b"\xc1")  # undecodable: the plugin skips it
        with anyio.fail_after(TIMEOUT):
            for doc in documents:
                while channel.push(doc) == lib04.DH_FULL:
                    await anyio.sleep(0.001)
            while channel.stats().queued:
                await anyio.sleep(0.001)
            channel.close()
            assert await channel.wait_exited(key, TIMEOUT)
    finally:
        channel.release(key)
        channel.shutdown()
        vt.drop_fn(vt.state)
    after = plugin.stats()
    delta = {k: after[k] - before[k] for k in after}
    assert delta["results_received"] == 10
    assert (delta["results_decoded"], delta["results_invalid"]) == (9, 1)
    assert delta["result_diffs"] == 18 and delta["exit_sentinels_sent"] == 1
