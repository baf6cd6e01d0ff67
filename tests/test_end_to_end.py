"""Source plugin → Python → reaction plugin, all real: the fixture source's
change events are decoded in Python, turned into query results and fed to
the fixture reaction, which writes every result it pulls into the host's
state store; the store must then hold exactly what was sent, in order."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from drasi_host import (
    CallbackContext,
    ChangeOp,
    ComponentStatus,
    QueryResult,
    ReactionRuntimeContext,
    ResultDiff,
    SourceChange,
    SourceRuntimeContext,
    SubscriptionSettings,
)
from drasi_host.bridges.state_store import MemoryStateStore
from drasi_host.loader import load_plugin
from drasi_host.payloads import codec_for

Stats = Callable[[Path], dict[str, int]]
EVENTS = 500


def private_copy(src: Path, directory: Path) -> Path:
    """A copy of a built library: loading it gives a fresh library instance."""
    directory.mkdir(parents=True, exist_ok=True)
    dst = directory / src.name
    shutil.copy2(src, dst)
    return dst


def fnv1a_64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def to_result(change: SourceChange, index: int) -> QueryResult:
    """What a query over every element would emit for one change."""
    element = change.element
    row: dict[str, Any] = {
        "id": element.reference.element_id,
        "type": element.type,
        "labels": list(element.labels),
        "props": element.properties,
    }
    if change.op is ChangeOp.INSERT:
        diff = ResultDiff.add(row)
    elif change.op is ChangeOp.UPDATE:
        diff = ResultDiff.update(row, before={"id": row["id"]}, after=row, grouping_keys=["id"])
    else:
        diff = ResultDiff.delete(row)
    return QueryResult(
        query_id="q-e2e",
        timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc).replace(microsecond=index % 1_000_000),
        results=[diff],
        metadata={"sequence": index},
    )


@pytest.mark.anyio
async def test_source_to_python_to_reaction(
    fixture_plugins: dict[str, Path], fixture_stats_reader: Stats, tmp_path: Path
) -> None:
    source_path = private_copy(fixture_plugins["source"], tmp_path / "source")
    reaction_path = private_copy(fixture_plugins["reaction"], tmp_path / "reaction")
    callbacks = CallbackContext("e2e")
    store = MemoryStateStore()
    codec = codec_for("application/json")
    assert codec is not None
    sent: list[bytes] = []

    with load_plugin(source_path, callbacks) as source_plugin, load_plugin(
        reaction_path, callbacks
    ) as reaction_plugin:
        source = await source_plugin.source_plugins[0].create_source(
            "e2e-src", {"event_count": EVENTS}
        )
        reaction = await reaction_plugin.reaction_plugins[0].create_reaction(
            "e2e-rx", ["q-e2e"], {"record": "store"}
        )
        async with source, reaction:
            assert reaction.query_ids == ["q-e2e"]
            await source.initialize(SourceRuntimeContext("e2e", "e2e-src"))
            await reaction.initialize(
                ReactionRuntimeContext("e2e", "e2e-rx", state_store=store)
            )
            await reaction.start()
            await source.start()
            assert await reaction.status() is ComponentStatus.RUNNING
            response = await source.subscribe(
                SubscriptionSettings("e2e-src", "q-e2e", False, ["Person"], ["KNOWS"])
            )
            async with response.receiver as receiver:
                index = 0
                async for event in receiver:
                    change = event.change
                    assert change is not None
                    result = to_result(change, index)
                    await reaction.enqueue_query_result(result)
                    sent.append(codec.encode_query_result(result))
                    index += 1
            assert await reaction.flush(timeout=10)
            await source.stop()
            await reaction.stop()
            assert await reaction.status() is ComponentStatus.STOPPED

    assert len(sent) == EVENTS
    keys = [k for k in store.list_keys("e2e-rx") if k.startswith("result:")]
    assert keys == [f"result:{i:08d}" for i in range(EVENTS)]
    recorded: list[bytes] = []
    for key in keys:
        value = store.get("e2e-rx", key)
        assert value is not None
        recorded.append(value)
    assert recorded == sent  # byte for byte, in order

    # and what the bytes say is what Python built from the source's changes
    first = json.loads(recorded[0])
    assert first["query_id"] == "q-e2e"
    assert first["timestamp"].startswith("2026-01-01T00:00:00")
    assert first["metadata"] == {"sequence": 0}
    assert first["results"][0]["type"] == "ADD"
    assert first["results"][0]["data"]["id"] == "n0"
    assert first["results"][0]["data"]["props"]["name"] == "node-0"
    update = json.loads(recorded[1])["results"][0]
    assert update["type"] == "UPDATE" and update["grouping_keys"] == ["id"]
    delete = json.loads(recorded[2])["results"][0]
    assert delete["type"] == "DELETE" and delete["data"]["props"] == {}
    relation = json.loads(recorded[3])["results"][0]["data"]
    assert (relation["id"], relation["type"], relation["labels"]) == ("r3", "relation", ["KNOWS"])
    decoded = codec.decode_query_result(recorded[-1])
    assert decoded.metadata == {"sequence": EVENTS - 1}

    # the reaction's own totals, published to the store at stop
    assert store.get("e2e-rx", "result_count") == str(EVENTS).encode()
    assert store.get("e2e-rx", "result_bytes") == str(sum(map(len, sent))).encode()
    assert store.get("e2e-rx", "result_fnv1a") == f"{fnv1a_64(b''.join(sent)):016x}".encode()

    reaction_stats = fixture_stats_reader(reaction_path)
    assert reaction_stats["results_received"] == reaction_stats["results_released"] == EVENTS
    assert reaction_stats["results_invalid"] == 0
    assert reaction_stats["reactions_dropped"] == 1
    source_stats = fixture_stats_reader(source_path)
    assert source_stats["events_created"] == source_stats["events_released"] == EVENTS
    assert source_stats["sources_dropped"] == 1
