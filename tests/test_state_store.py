"""The state-store bridge, exercised through the real C vtable.

Every call goes through the function pointers of the host-built
``StateStoreVtable`` (the C shims of ``drasi_host._ffi`` and the
``extern "Python"`` functions behind them), and the results are taken apart
and freed as a plugin must.  Both stores shipped with the package are run
through the same cases; SQLite also for durability and concurrency.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from bridges_helpers import Caller, NativeDriver, build_services_plugin, run_services_plugin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drasi_host._abi import ffi
from drasi_host._callbacks import handles
from drasi_host.bridges.identity import StaticIdentityProvider
from drasi_host.bridges.state_store import (
    MAX_VALUE_LEN,
    NOT_FOUND,
    MemoryStateStore,
    SqliteStateStore,
    StateStoreHandle,
    StateStoreVtableBuilder,
    _in_marks,
)
from drasi_host.models import Credentials

OK = (0, None)
ABSENT = (1, NOT_FOUND)


class BridgedMemoryStore(MemoryStateStore):
    """A subclass: the same table, but reached through the Python bridge."""


@pytest.fixture(params=["memory", "bridged-memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStateStore()
    elif request.param == "bridged-memory":
        yield BridgedMemoryStore()
    else:
        s = SqliteStateStore(tmp_path / "state.db")
        yield s
        s.close()


@pytest.fixture
def bridge(store: Any) -> Iterator[tuple[Any, StateStoreHandle, Caller]]:
    handle = StateStoreVtableBuilder.build(store)
    yield store, handle, Caller(handle.vtable)
    handle.close()


# ---- every function, through C ---------------------------------------------


def test_set_get_round_trip(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    store, _, c = bridge
    assert c.set("s1", "k", b"\x00\x01value\xff") == OK
    assert c.get("s1", "k") == ("found", b"\x00\x01value\xff")
    assert store.get("s1", "k") == b"\x00\x01value\xff"
    assert c.get("s2", "k") == ("missing", None), "stores are separate"
    assert c.set("s1", "k", b"replaced") == OK
    assert c.get("s1", "k") == ("found", b"replaced")


def test_value_written_by_the_provider_is_read_through_c(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    store, _, c = bridge
    store.set("s", "clé ✓", b"x" * 5000)
    assert c.get("s", "clé ✓") == ("found", b"x" * 5000)


def test_empty_value_is_found_with_dangling_pointer(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    store, _, c = bridge
    assert c.set("s", "empty", b"") == OK
    # take_get checks: found, len 0, cap 0, data == 0x1 (never freed)
    assert c.get("s", "empty") == ("found", b"")
    assert store.get("s", "empty") == b""
    assert c.contains_key("s", "empty") == OK
    assert c.key_count("s") == 1


def test_empty_value_with_null_pointer_is_accepted(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    _, _, c = bridge
    assert c.set_raw("s", "k", ffi.NULL, 0) == OK
    assert c.get("s", "k") == ("found", b"")


def test_missing_key_is_not_found_without_error(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    _, _, c = bridge
    assert c.get("nothing", "here") == ("missing", None)
    assert c.get("", "") == ("missing", None)


def test_delete(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    store, _, c = bridge
    c.set("s", "a", b"1")
    c.set("s", "b", b"2")
    assert c.delete("s", "a") == OK
    assert c.get("s", "a") == ("missing", None)
    assert store.get("s", "b") == b"2"
    assert c.delete("s", "a") == OK, "deleting a missing key succeeds"
    assert c.delete("no-store", "x") == OK


def test_contains_key_absent_is_exactly_not_found(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    _, _, c = bridge
    assert c.contains_key("s", "k") == ABSENT
    c.set("s", "k", b"v")
    assert c.contains_key("s", "k") == OK
    assert c.contains_key("s", "K") == ABSENT


def test_store_exists_means_at_least_one_key(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    _, _, c = bridge
    assert c.store_exists("s") == ABSENT
    c.set("s", "k", b"")
    assert c.store_exists("s") == OK
    assert c.store_exists("t") == ABSENT
    c.delete("s", "k")
    assert c.store_exists("s") == ABSENT


def test_get_many_fills_exactly_n_slots(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    store, _, c = bridge
    store.set("s", "a", b"A")
    store.set("s", "empty", b"")
    store.set("other", "b", b"B")
    keys = ["a", "missing", "empty", "b", "a"]
    # one spare slot past n, filled with a marker that must survive
    out = ffi.new("FfiGetResult[]", len(keys) + 1)
    out[len(keys)].len = 4242
    assert c.get_many_raw("s", keys, out) == OK
    assert [c.take_get(out[i]) for i in range(len(keys))] == [
        ("found", b"A"),
        ("missing", None),
        ("found", b""),
        ("missing", None),
        ("found", b"A"),
    ]
    assert out[len(keys)].len == 4242


def test_get_many_with_no_keys(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    _, _, c = bridge
    # n == 0: the plugin may pass NULL arrays
    result = c.vt.get_many_fn(c.state, ffi.new("FfiStr *")[0], ffi.NULL, 0, ffi.NULL)
    assert c.take_result(result) == OK
    assert c.get_many("s", []) == (0, None, [])


def test_get_many_null_out_values_is_an_error(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    _, _, c = bridge
    code, message = c.get_many_raw("s", ["a"], ffi.NULL)
    assert code != 0 and message is not None and "NULL" in message


def test_set_many(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    store, _, c = bridge
    assert c.set_many("s", [("a", b"1"), ("b", b""), ("ü", b"\x00" * 100)]) == OK
    assert store.get("s", "a") == b"1"
    assert store.get("s", "b") == b""
    assert store.get("s", "ü") == b"\x00" * 100
    assert c.set_many("s", [("a", b"2"), ("a", b"3")]) == OK
    assert c.get("s", "a") == ("found", b"3"), "the last write of a key wins"
    assert c.set_many("s", []) == OK
    assert c.key_count("s") == 3


def test_set_many_with_no_items_and_null_arrays(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    _, _, c = bridge
    sid = ffi.new("FfiStr *")[0]
    result = c.vt.set_many_fn(c.state, sid, ffi.NULL, ffi.NULL, ffi.NULL, 0)
    assert c.take_result(result) == OK


def test_delete_many_counts_present_keys(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    store, _, c = bridge
    for k in "abcd":
        store.set("s", k, k.encode())
    assert c.delete_many("s", ["a", "c", "zz", "a"]) == 2
    assert store.list_keys("s") == ["b", "d"]
    assert c.delete_many("s", []) == 0
    assert c.delete_many("none", ["b"]) == 0
    assert c.key_count("s") == 2


def test_clear_store(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    store, _, c = bridge
    c.set_many("s", [(f"k{i}", b"v") for i in range(7)])
    c.set("t", "k", b"v")
    assert c.clear_store("s") == 7
    assert c.key_count("s") == 0
    assert c.store_exists("s") == ABSENT
    assert c.clear_store("s") == 0
    assert store.get("t", "k") == b"v", "other stores are untouched"


def test_list_keys(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    _, _, c = bridge
    assert c.list_keys("s") == []  # len 0, cap 0, non-NULL data
    c.set_many("s", [("b", b""), ("a", b""), ("日本", b""), ("", b"")])
    assert c.list_keys("s") == ["", "a", "b", "日本"]


def test_key_count(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    _, _, c = bridge
    assert c.key_count("s") == 0
    c.set_many("s", [("a", b""), ("b", b"x")])
    c.set("s", "a", b"again")
    assert c.key_count("s") == 2


def test_sync(bridge: tuple[Any, StateStoreHandle, Caller]) -> None:
    _, _, c = bridge
    c.set("s", "k", b"v")
    assert c.sync() == OK


# ---- what a plugin can get wrong ----------------------------------------------


def test_invalid_utf8_key_is_an_error_not_a_crash(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    store, _, c = bridge
    kind, message = c.get("s", b"\xff\xfe")
    assert kind == "error" and isinstance(message, str) and "invalid UTF-8" in message
    code, message = c.set(b"s\xc3", "k", b"v")
    assert code != 0 and message is not None and "state store id" in message
    code, message, _ = c.get_many("s", ["ok", b"\x80"])
    assert code != 0 and message is not None and "invalid UTF-8" in message
    assert store.key_count("s") == 0


def test_null_key_pointer_with_length_is_an_error(
    bridge: tuple[Any, StateStoreHandle, Caller],
) -> None:
    _, _, c = bridge
    bad = ffi.new("FfiStr *", {"ptr": ffi.NULL, "len": 3})[0]
    sid = ffi.new("FfiStr *", {"ptr": ffi.NULL, "len": 0})[0]
    kind, message = c.take_get(c.vt.get_fn(c.state, sid, bad))
    assert kind == "error" and isinstance(message, str) and "NULL" in message
    assert c.set_raw("s", "k", ffi.NULL, 5)[0] != 0


def test_value_size_limit(store: Any) -> None:
    with StateStoreVtableBuilder.build(store, max_value_len=16) as handle:
        c = Caller(handle.vtable)
        assert c.set("s", "k", b"x" * 16) == OK
        code, message = c.set("s", "k", b"x" * 17)
        assert code != 0 and message is not None and "17 bytes exceeds the limit of 16" in message
        code, message = c.set_many("s", [("a", b"ok"), ("b", b"y" * 17)])
        assert code != 0 and message is not None and "limit" in message
        assert store.get("s", "k") == b"x" * 16
        assert store.get("s", "a") is None, "a refused set_many writes nothing"
    assert MAX_VALUE_LEN == 64 * 1024 * 1024


# ---- provider failures always become errors ----------------------------------


class Broken:
    """A provider whose every method raises."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any) -> Any:
            raise OSError(f"disk on fire in {name}")

        return fail


def test_provider_exceptions_are_error_results(caplog: pytest.LogCaptureFixture) -> None:
    with StateStoreVtableBuilder.build(Broken()) as handle:
        c = Caller(handle.vtable)
        kind, message = c.get("s", "k")
        assert kind == "error", "a failing get is never 'not found'"
        assert message == "OSError: disk on fire in get"
        for name, result in [
            ("set", c.set("s", "k", b"v")),
            ("delete", c.delete("s", "k")),
            ("contains_key", c.contains_key("s", "k")),
            ("store_exists", c.store_exists("s")),
            ("set_many", c.set_many("s", [("k", b"v")])),
            ("sync", c.sync()),
        ]:
            assert result == (1, f"OSError: disk on fire in {name}"), name
        with caplog.at_level(logging.ERROR, logger="drasi_host.bridges"):
            assert c.delete_many("s", ["k"]) < 0
            assert c.clear_store("s") < 0
            assert c.key_count("s") < 0
            assert c.list_keys("s") == []
        logged = [r.getMessage() for r in caplog.records if r.name == "drasi_host.bridges"]
        for name in ("delete_many", "clear_store", "key_count", "list_keys"):
            assert any(name in m and "disk on fire" in m for m in logged), name


def test_get_many_failure_leaves_out_values_untouched() -> None:
    class FailsAfterReading(MemoryStateStore):
        def get_many(self, store_id: str, keys: Sequence[str]) -> dict[str, bytes]:
            raise KeyError("boom")

    with StateStoreVtableBuilder.build(FailsAfterReading()) as handle:
        c = Caller(handle.vtable)
        out = ffi.new("FfiGetResult[]", 3)
        for i in range(3):
            out[i].len = 77
            out[i].error_code = -5
        code, message = c.get_many_raw("s", ["a", "b", "c"], out)
        assert (code, message) == (1, "KeyError: 'boom'")
        assert [(out[i].len, out[i].error_code, out[i].cap) for i in range(3)] == [(77, -5, 0)] * 3


def test_wrong_provider_return_types_are_errors() -> None:
    class Wrong(MemoryStateStore):
        def get(self, store_id: str, key: str) -> Any:
            return "text, not bytes"

        def get_many(self, store_id: str, keys: Sequence[str]) -> Any:
            return {k: 42 for k in keys}

        def key_count(self, store_id: str) -> Any:
            return "many"

        def delete_many(self, store_id: str, keys: Sequence[str]) -> Any:
            return -3

    with StateStoreVtableBuilder.build(Wrong()) as handle:
        c = Caller(handle.vtable)
        kind, message = c.get("s", "k")
        assert kind == "error" and isinstance(message, str) and "expected bytes" in message
        code, message, _ = c.get_many("s", ["a", "b"])
        assert code == 1 and message is not None and "expected bytes" in message
        assert c.key_count("s") == -1
        assert c.delete_many("s", ["a"]) == -1


def test_get_many_accepts_an_aligned_sequence() -> None:
    class Aligned(MemoryStateStore):
        def get_many(self, store_id: str, keys: Sequence[str]) -> Any:
            return [self.get(store_id, k) for k in keys]

    store = Aligned()
    store.set("s", "a", b"1")
    with StateStoreVtableBuilder.build(store) as handle:
        c = Caller(handle.vtable)
        assert c.get_many("s", ["x", "a"]) == (0, None, [("missing", None), ("found", b"1")])


def test_not_a_provider_is_refused() -> None:
    with pytest.raises(TypeError, match="no method get"):
        StateStoreVtableBuilder.build(object())  # type: ignore[arg-type]

    class Partial(MemoryStateStore):
        key_count = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"Partial is not a StateStoreProvider.*key_count"):
        StateStoreVtableBuilder.build(Partial())  # type: ignore[arg-type]


# ---- lifetime: close, drop, late calls -----------------------------------------


@pytest.mark.parametrize("kind", [MemoryStateStore, BridgedMemoryStore])
def test_late_calls_after_close_are_errors(kind: type[MemoryStateStore]) -> None:
    store = kind()
    handle = StateStoreVtableBuilder.build(store)
    assert handle.native == (kind is MemoryStateStore)
    c = Caller(handle.vtable)
    c.set("s", "k", b"v")
    assert handle.key in handles
    late_before = handles.late_calls
    handle.close()
    assert handle.closed and handle.key not in handles
    handle.close()  # idempotent
    assert c.get("s", "k") == ("error", "state store is closed")
    assert c.set("s", "k", b"x") == (1, "state store is closed")
    assert c.contains_key("s", "k") == (1, "state store is closed")
    assert c.get_many("s", ["k"])[:2] == (1, "state store is closed")
    assert c.delete_many("s", ["k"]) == -1
    assert c.clear_store("s") == -1
    assert c.key_count("s") == -1
    assert c.list_keys("s") == []
    assert c.sync() == (1, "state store is closed")
    c.drop()  # harmless
    if not handle.native:  # the native vtable answers without the Python table
        assert handles.late_calls > late_before
    assert store.get("s", "k") == b"v", "nothing reached the provider"


@pytest.mark.parametrize("kind", [MemoryStateStore, BridgedMemoryStore])
def test_drop_marks_only_and_a_second_drop_is_ignored(
    caplog: pytest.LogCaptureFixture, kind: type[MemoryStateStore]
) -> None:
    store = kind()
    with (
        caplog.at_level(logging.WARNING, logger="drasi_host.bridges"),
        StateStoreVtableBuilder.build(store) as handle,
    ):
        c = Caller(handle.vtable)
        assert not handle.dropped and handle.drop_calls == 0
        c.drop()
        assert handle.dropped and handle.drop_calls == 1 and not handle.closed
        c.drop()
        assert handle.drop_calls == 2
        # the block stays host-owned and usable until close (a buggy plugin is served)
        assert handle.vtable.get_fn != ffi.NULL
        assert c.set("s", "k", b"v") == OK
        assert handle.calls_after_drop == 1
    assert handle.closed
    # the native table counts in C; its warnings are logged when the handle closes
    assert any("drop_fn 2 times" in r.getMessage() for r in caplog.records)
    assert handle.drop_calls == 2 and handle.calls_after_drop == 1
    assert store.get("s", "k") == b"v"


def test_each_build_gets_fresh_state() -> None:
    store = MemoryStateStore()
    with (
        StateStoreVtableBuilder.build(store) as h1,
        StateStoreVtableBuilder.build(store) as h2,
    ):
        assert h1.vtable.state != h2.vtable.state
        assert h1.vtable != h2.vtable
        Caller(h1.vtable).drop()
        assert h1.dropped and not h2.dropped
        h1.close()
        assert Caller(h2.vtable).set("s", "k", b"v") == OK
        assert Caller(h1.vtable).set("s", "k", b"v")[0] == 1


def test_collected_handle_releases_its_key() -> None:
    handle = StateStoreVtableBuilder.build(MemoryStateStore())
    key = handle.key
    copy = ffi.new("StateStoreVtable *", handle.vtable[0])
    del handle
    import gc

    gc.collect()
    assert key not in handles
    assert Caller(copy).get("s", "k") == ("error", "state store is closed")


# ---- coroutine providers run on the event loop -----------------------------------


class AsyncStore:
    """A coroutine provider wrapping a MemoryStateStore; notes the threads it ran on."""

    def __init__(self) -> None:
        self.inner = MemoryStateStore()
        self.threads: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        async def call(*args: Any) -> Any:
            self.threads.add(threading.get_ident())
            await anyio.sleep(0)
            if args and args[0] == "explode":
                raise ValueError(f"async {name} failed")
            return method(*args)

        return call


@pytest.mark.anyio
async def test_async_provider_runs_on_the_loop_from_a_plugin_thread() -> None:
    provider = AsyncStore()
    loop_thread = threading.get_ident()
    with StateStoreVtableBuilder.build(provider) as handle:
        c = Caller(handle.vtable)

        def plugin_thread() -> list[Any]:
            return [
                c.set("s", "k", b"v1"),
                c.get("s", "k"),
                c.set_many("s", [("a", b""), ("b", b"B")]),
                c.get_many("s", ["a", "b", "zz"]),
                c.contains_key("s", "zz"),
                c.store_exists("s"),
                c.key_count("s"),
                c.list_keys("s"),
                c.delete("s", "k"),
                c.delete_many("s", ["a", "nope"]),
                c.sync(),
                c.clear_store("s"),
                c.get("explode", "k"),
                c.key_count("explode"),
            ]

        results = await anyio.to_thread.run_sync(plugin_thread)
    assert results == [
        OK,
        ("found", b"v1"),
        OK,
        (0, None, [("found", b""), ("found", b"B"), ("missing", None)]),
        ABSENT,
        OK,
        3,
        ["a", "b", "k"],
        OK,
        1,
        OK,
        1,
        ("error", "ValueError: async get failed"),
        -1,
    ]
    assert provider.threads == {loop_thread}


@pytest.mark.anyio
async def test_async_provider_called_on_the_loop_thread_fails_instead_of_hanging() -> None:
    with StateStoreVtableBuilder.build(AsyncStore()) as handle:
        kind, message = Caller(handle.vtable).get("s", "k")
    assert kind == "error" and isinstance(message, str) and "event loop thread" in message


@pytest.mark.anyio
async def test_sync_provider_inside_a_loop_is_called_directly() -> None:
    store = MemoryStateStore()
    with StateStoreVtableBuilder.build(store) as handle:
        c = Caller(handle.vtable)
        assert c.set("s", "k", b"v") == OK  # on the loop thread: fine for plain methods
        assert await anyio.to_thread.run_sync(c.get, "s", "k") == ("found", b"v")


def test_async_provider_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        StateStoreVtableBuilder.build(AsyncStore())


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_async_call_after_the_loop_finished_is_an_error(backend: str) -> None:
    holder: dict[str, StateStoreHandle] = {}

    async def main() -> None:
        holder["h"] = StateStoreVtableBuilder.build(AsyncStore())

    anyio.run(main, backend=backend)
    handle = holder["h"]
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(Caller(handle.vtable).get("s", "k")))
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert result[0] == (
        "error",
        "state store AsyncStore: get() needs the event loop, which has finished",
    )
    handle.close()


# ---- property: arbitrary keys and values round-trip ------------------------------

keys_st = st.text(min_size=0, max_size=40)
values_st = st.binary(min_size=0, max_size=3000)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    store_id=keys_st,
    items=st.dictionaries(keys_st, values_st, max_size=8),
    probe=st.lists(keys_st, max_size=6),
)
def test_round_trip_property(
    bridge: tuple[Any, StateStoreHandle, Caller],
    store_id: str,
    items: dict[str, bytes],
    probe: list[str],
) -> None:
    store, _, c = bridge
    c.clear_store(store_id)
    pairs = list(items.items())
    half = len(pairs) // 2
    for k, v in pairs[:half]:
        assert c.set(store_id, k, v) == OK
    assert c.set_many(store_id, pairs[half:]) == OK
    for k, v in pairs:
        assert c.get(store_id, k) == ("found", v)
        assert store.get(store_id, k) == v
    asked = [k for k, _ in pairs] + probe
    code, _, got = c.get_many(store_id, asked)
    assert code == 0
    assert got == [("found", items[k]) if k in items else ("missing", None) for k in asked]
    assert c.list_keys(store_id) == sorted(items)
    assert c.key_count(store_id) == len(items)
    assert c.store_exists(store_id) == (OK if items else ABSENT)
    assert c.delete_many(store_id, probe) == len(set(probe) & set(items))


# ---- SQLite: durability and concurrency -----------------------------------------


def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    with SqliteStateStore(path) as store, StateStoreVtableBuilder.build(store) as handle:
        c = Caller(handle.vtable)
        c.set("s", "k", b"\x00persisted")
        c.set_many("s", [("a", b""), ("ß", b"x" * 10000)])
        c.set("t", "k", b"other")
        c.delete("t", "k")
        assert c.sync() == OK
    with SqliteStateStore(path) as reopened:
        assert reopened.get("s", "k") == b"\x00persisted"
        assert reopened.get_many("s", ["a", "ß"]) == {"a": b"", "ß": b"x" * 10000}
        assert reopened.list_keys("s") == ["a", "k", "ß"]
        assert not reopened.store_exists("t")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_sqlite_closed_store_reports_errors_through_c(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "x.db")
    with StateStoreVtableBuilder.build(store) as handle:
        store.close()
        store.close()
        code, message = Caller(handle.vtable).set("s", "k", b"v")
        assert code == 1 and message is not None and "is closed" in message


def test_sqlite_get_many_beyond_the_parameter_chunk(tmp_path: Path) -> None:
    with SqliteStateStore(tmp_path / "big.db") as store:
        store.set_many("s", [(f"k{i}", str(i).encode()) for i in range(1200)])
        got = store.get_many("s", [f"k{i}" for i in range(0, 1300, 1)])
        assert len(got) == 1200 and got["k1199"] == b"1199"
        assert store.delete_many("s", [f"k{i}" for i in range(1100)]) == 1100
        assert store.key_count("s") == 100


def test_sqlite_set_many_is_atomic(tmp_path: Path) -> None:
    with SqliteStateStore(tmp_path / "atomic.db") as store:
        store.set("s", "a", b"old")
        # the second row cannot be bound: the first, already written, is rolled back
        with pytest.raises(sqlite3.Error):
            store.set_many("s", [("a", b"new"), (object(), b"2")])  # type: ignore[list-item]
        assert store.get("s", "a") == b"old"
        assert store.key_count("s") == 1
        with pytest.raises(sqlite3.Error):
            store.delete_many("s", ["a", object()])  # type: ignore[list-item]
        assert store.get("s", "a") == b"old"
        store.set("s", "b", b"still writable")
        assert store.key_count("s") == 2


def test_sqlite_concurrent_writers_from_python_threads(tmp_path: Path) -> None:
    with (
        SqliteStateStore(tmp_path / "conc.db") as store,
        StateStoreVtableBuilder.build(store) as handle,
    ):
        c = Caller(handle.vtable)
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(150):
                    assert c.set(f"w{n}", f"k{i}", f"{n}:{i}".encode()) == OK
                    if i % 10 == 0:
                        assert c.set_many("shared", [(f"{n}-{i}", b"x"), ("last", b"%d" % n)]) == OK
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for n in range(4):
            assert store.key_count(f"w{n}") == 150
            assert store.get(f"w{n}", "k149") == f"{n}:149".encode()
        assert store.key_count("shared") == 4 * 15 + 1


# ---- native threads -------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> NativeDriver:
    return NativeDriver(tmp_path_factory.mktemp("driver"))


def test_native_threads_use_the_store_concurrently(store: Any, driver: NativeDriver) -> None:
    with StateStoreVtableBuilder.build(store) as handle:
        secs, errors = driver.run(handle.vtable, threads=4, n=2000)
    assert errors == 0
    for t in range(4):
        assert store.key_count(f"driver-{t}") == 64
        last = store.get(f"driver-{t}", "k63")
        # the last i < 2000 with i % 64 == 63 wrote it
        assert last is not None and int.from_bytes(last[:8], "little") == 1983
    assert secs > 0


def test_native_thread_after_close_gets_errors(driver: NativeDriver) -> None:
    handle = StateStoreVtableBuilder.build(MemoryStateStore())
    handle.close()
    _, errors = driver.run(handle.vtable, threads=1, n=10)
    assert errors == 20, "every set and every get must have reported an error"


# ---- a real plugin thread: the "services" fixture plugin -------------------------


@pytest.fixture(scope="module")
def services_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_services_plugin(tmp_path_factory.mktemp("services"))


def _seed(store: Any, sid: str) -> dict[str, bytes]:
    inputs = {"in:a": b"alpha", "in:empty": b"", "in:bin": bytes(range(256)), "in:ü": b"\xff"}
    for key, value in inputs.items():
        store.set(sid, key, value)
    store.set(sid, "unrelated", b"x")
    return inputs


def _expected_report(inputs: dict[str, bytes]) -> dict[str, Any]:
    return {
        "copied": len(inputs),
        "contains_missing": "not_found",
        "many_deleted": len(inputs),
        # inputs + "unrelated" + the "out:" copies; the "many:" copies are deleted again
        "key_count": 2 * len(inputs) + 1,
        "store_exists": True,
        "other_store_exists": False,
        "sync": "ok",
        "identity": {"kind": 0, "f1": "alice", "f2": "pw", "f3": None, "clone_kind": 0},
        "errors": [],
    }


@pytest.mark.anyio
async def test_services_plugin_uses_every_function(store: Any, services_lib: Path) -> None:
    inputs = _seed(store, "svc-1")
    identity = StaticIdentityProvider(Credentials.username_password("alice", "pw"))
    report = await run_services_plugin(services_lib, "svc-1", store, identity)
    assert report == _expected_report(inputs)
    for key, value in inputs.items():
        assert store.get("svc-1", "out:" + key[3:]) == value
        assert store.get("svc-1", "many:" + key[3:]) is None


@pytest.mark.anyio
async def test_services_plugin_with_a_coroutine_store(services_lib: Path) -> None:
    provider = AsyncStore()
    inputs = _seed(provider.inner, "svc-async")
    identity = StaticIdentityProvider(Credentials.username_password("alice", "pw"))
    report = await run_services_plugin(services_lib, "svc-async", provider, identity)
    assert report == _expected_report(inputs)
    assert provider.threads == {threading.get_ident()}, "coroutines ran on the loop thread"


@pytest.mark.anyio
async def test_services_plugin_sees_provider_errors(services_lib: Path) -> None:
    class FailingGetMany(MemoryStateStore):
        def get_many(self, store_id: str, keys: Sequence[str]) -> dict[str, bytes]:
            raise RuntimeError("replica unavailable")

        def sync(self) -> None:
            raise OSError("fsync failed")

    store = FailingGetMany()
    _seed(store, "svc-err")
    report = await run_services_plugin(services_lib, "svc-err", store)
    assert report["sync"] == "error:OSError: fsync failed"
    assert report["identity"] is None
    assert report["many_deleted"] == 0
    assert report["errors"] == [
        "get_many: RuntimeError: replica unavailable (code 1)",
        "sync: OSError: fsync failed (code 1)",
    ]


@pytest.mark.anyio
async def test_services_plugin_benchmark_mode(services_lib: Path, tmp_path: Path) -> None:
    with SqliteStateStore(tmp_path / "ops.db") as sqlite_store:
        for store in (MemoryStateStore(), sqlite_store):
            report = await run_services_plugin(services_lib, "svc-ops", store, config={"ops": 3000})
            assert report["ops"] == 6000
            assert report["mismatches"] == 0 and report["failures"] == 0
            assert report["errors"] == []
            assert store.key_count("svc-ops") == 1000 + 1  # bench:0..999 and the report
            assert store.get("svc-ops", "bench:999") == b"2999"


def test_sqlite_exclusive_locks_the_file_and_shared_does_not(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    with SqliteStateStore(path) as store:
        store.set("s", "k", b"v")
        other = sqlite3.connect(path, timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("SELECT count(*) FROM drasi_state").fetchone()
        other.close()
    with SqliteStateStore(path, exclusive=False) as store:
        store.set("s", "k2", b"w")
        other = sqlite3.connect(path, timeout=5)
        assert other.execute("SELECT count(*) FROM drasi_state").fetchone()[0] == 2
        other.close()


def test_sqlite_writes_survive_a_process_crash_and_sync_reaches_the_file(
    tmp_path: Path,
) -> None:
    """Each write commits on its own (it survives the process dying without
    closing anything); after ``sync()`` the main database file alone holds
    everything (the WAL is checkpointed into it)."""
    path = tmp_path / "crash.db"
    script = (
        "import os, sys\n"
        "from drasi_host import SqliteStateStore\n"
        "store = SqliteStateStore(sys.argv[1])\n"
        "store.set('s', 'synced', b'1')\n"
        "store.set_many('s', [('a', b'x'), ('b', b'')])\n"
        "store.sync()\n"
        "store.set('s', 'unsynced', b'2')\n"
        "os._exit(0)  # no close, no checkpoint, no atexit\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    copy = tmp_path / "copy.db"
    shutil.copyfile(path, copy)  # the main file only, without the WAL
    with SqliteStateStore(copy) as synced_only:
        assert synced_only.get_many("s", ["synced", "a", "b"]) == {
            "synced": b"1",
            "a": b"x",
            "b": b"",
        }
    with SqliteStateStore(path) as recovered:
        assert recovered.list_keys("s") == ["a", "b", "synced", "unsynced"]
        assert recovered.get("s", "unsynced") == b"2"


def test_sqlite_get_many_pads_to_few_statement_texts(tmp_path: Path) -> None:
    assert [_in_marks(n) for n in (1, 2, 3, 5, 8, 9, 500, 512)] == [1, 2, 4, 8, 8, 16, 512, 512]
    with SqliteStateStore(tmp_path / "pad.db") as store:
        store.set_many("s", [(f"k{i}", bytes([i % 256])) for i in range(600)])
        for n in (1, 3, 7, 600):
            wanted = [f"k{i}" for i in range(n)] + ["missing"]
            assert store.get_many("s", wanted) == {f"k{i}": bytes([i % 256]) for i in range(n)}
