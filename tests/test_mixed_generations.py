"""Plugins of both ABI generations from one directory, in one process.

A 0.13 source feeds a 0.4 reaction and a 0.4 source feeds a 0.13 reaction,
with Python in the middle turning each change into a query result.  What
the sources sent is checked against the fixtures' own generators; what the
reactions received is checked by the reaction plugins (count, bytes and an
FNV-1a of every payload), against bytes built here independently: the JSON
documents with the standard library, the MessagePack documents with the
``msgpack`` package (not the host's encoder).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgpack
import pytest
from generations import stats013
from test_reaction import fnv1a, summary

from drasi_host import (
    CallbackContext,
    LoadedPlugin,
    PluginLoader,
    PluginLoaderConfig,
    QueryResult,
    ReactionRuntimeContext,
    ResultDiff,
    SourceRuntimeContext,
    SubscriptionSettings,
)

pytestmark = pytest.mark.anyio

INSTANCE = "mixed"
BASE = datetime(2026, 11, 28, 7, 30, tzinfo=timezone.utc)


@pytest.fixture
def plugin_dir(
    fixture_plugins: dict[str, Path], fixture_plugins_013: dict[str, Path], tmp_path: Path
) -> Path:
    """One directory holding a 0.4 source, a 0.4 reaction and a 0.13 library
    with every kind (copies, so their counters are this test's alone)."""
    out = tmp_path / "plugins"
    out.mkdir()
    for lib in (
        fixture_plugins["source"],
        fixture_plugins["reaction"],
        fixture_plugins_013["v013_all"],
    ):
        shutil.copy2(lib, out / lib.name)
    return out


def expected_013(source_id: str, count: int) -> list[tuple[str, str, str]]:
    """(op, element id, label) of the changes the 0.13 fixture source makes
    (plugins_fixture/v013/payloads013.c: insert, update, a relation insert,
    delete, over and over)."""
    out = []
    for i in range(count):
        base = i - i % 4
        out.append(
            [
                ("insert", f"n{base}", "Person"),
                ("update", f"n{base}", "Person"),
                ("insert", f"r{i}", "KNOWS"),
                ("delete", f"n{base}", "Person"),
            ][i % 4]
        )
    return out


def expected_04(count: int, label: str) -> list[tuple[str, str, str]]:
    """(op, element id, label) of the changes the 0.4 fixture source makes
    (plugins_fixture/payload.c: ops insert, update, delete in turn; every
    fourth element a relation)."""
    ops = ("insert", "update", "delete")
    return [
        (ops[i % 3], f"r{i}", "KNOWS") if i % 4 == 3 else (ops[i % 3], f"n{i}", label)
        for i in range(count)
    ]


def result_for(i: int, op: str, entity_id: str, label: str) -> QueryResult:
    data = {"i": i, "id": entity_id, "op": op, "label": label, "name": "Zoë"}
    return QueryResult("q1", BASE + timedelta(microseconds=i), [ResultDiff.add(data)])


def json_bytes(i: int, op: str, entity_id: str, label: str) -> bytes:
    """The 0.4 (JSON) document of ``result_for(...)``, written by hand."""
    data = {"i": i, "id": entity_id, "op": op, "label": label, "name": "Zoë"}
    stamp = (BASE + timedelta(microseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc = {
        "query_id": "q1",
        "timestamp": stamp,
        "results": [{"type": "ADD", "data": data}],
        "metadata": {},
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def msgpack_bytes(i: int, op: str, entity_id: str, label: str) -> bytes:
    """The 0.13 (MessagePack, ABI-0.13.md section 12.4) document of
    ``result_for(...)``, written with the msgpack package."""
    data = {"i": i, "id": entity_id, "op": op, "label": label, "name": "Zoë"}
    when = BASE + timedelta(microseconds=i)
    # chrono's form: the shortest of 0, 3 or 6 fraction digits that is exact
    if when.microsecond == 0:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif when.microsecond % 1000 == 0:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    else:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc = {
        "query_id": "q1",
        "sequence": 0,
        "timestamp": stamp,
        "results": [{"type": "ADD", "data": data, "row_signature": 0}],
        "metadata": {},
    }
    return bytes(msgpack.packb(doc, use_bin_type=True))


async def pipe(source: Any, reaction: Any) -> list[tuple[str, str, str]]:
    """Every change of ``source`` as one query result into ``reaction``."""
    seen: list[tuple[str, str, str]] = []
    response = await source.subscribe(SubscriptionSettings(source.id, "q1", False, [], []))
    async with response.receiver as receiver:
        async for event in receiver:
            change = event.change
            assert change is not None and event.control is None
            assert change.element.reference.element_id == event.entity_id
            key = (change.op.wire, event.entity_id, event.label)
            await reaction.enqueue_query_result(result_for(len(seen), *key))
            seen.append(key)
    assert await reaction.flush(10)
    return seen


async def started(plugin: LoadedPlugin, kind: str, cid: str, *args: Any) -> Any:
    if kind == "source":
        obj = await plugin.source_plugins[0].create_source(cid, *args)
        await obj.initialize(SourceRuntimeContext(INSTANCE, cid))
    else:
        obj = await plugin.reaction_plugins[0].create_reaction(cid, ["q1"], *args)
        await obj.initialize(ReactionRuntimeContext(INSTANCE, cid))
    await obj.start()
    return obj


async def test_pipelines_across_generations(plugin_dir: Path) -> None:
    callbacks = CallbackContext(INSTANCE)
    plugins = PluginLoader(PluginLoaderConfig(plugin_dir)).load_all(callbacks)
    try:
        assert sorted(p.abi_version for p in plugins) == ["0.13", "0.4", "0.4"]
        v013 = next(p for p in plugins if p.abi_version == "0.13")
        src04 = next(p for p in plugins if p.abi_version == "0.4" and p.source_plugins)
        rx04 = next(p for p in plugins if p.abi_version == "0.4" and p.reaction_plugins)

        source13 = await started(v013, "source", "s13", {"count": 10})
        reaction04 = await started(rx04, "reaction", "r04")
        source04 = await started(src04, "source", "s04", {"event_count": 7})
        reaction13 = await started(v013, "reaction", "r13")

        # 0.13 source -> Python -> 0.4 reaction
        seen13 = await pipe(source13, reaction04)
        assert seen13 == expected_013("s13", 10)
        # 0.4 source -> Python -> 0.13 reaction
        seen04 = await pipe(source04, reaction13)
        assert seen04 == expected_04(7, seen04[0][2])

        for obj in (source13, reaction04, source04, reaction13):
            await obj.aclose()

        docs04 = [json_bytes(i, *key) for i, key in enumerate(seen13)]
        assert summary(rx04.path) == (len(docs04), sum(map(len, docs04)), fnv1a(docs04))
        docs13 = [msgpack_bytes(i, *key) for i, key in enumerate(seen04)]
        stats = stats013(v013.path)
        assert stats["results_received"] == stats["results_decoded"] == 7
        assert stats["results_invalid"] == 0
        assert stats["result_bytes"] == sum(map(len, docs13))
        assert stats["result_fnv1a"] & 0xFFFFFFFFFFFFFFFF == fnv1a(docs13)
        assert stats["exit_sentinels_sent"] == 1
        assert stats["payloads_created"] == stats["payloads_released"]
    finally:
        for plugin in plugins:
            await plugin.aclose()
