"""MemoryStateStore's native table: a Hypothesis state machine drives it
through the C vtable (as a plugin does) and through its Python methods, and
compares every answer with a plain dict model."""

from __future__ import annotations

import os
import subprocess
import sysconfig
import threading
from pathlib import Path

import pytest
from bridges_helpers import Caller
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from drasi_host import MemoryStateStore, StateStoreVtableBuilder
from drasi_host._abi import ffi
from drasi_host.bridges.state_store import NOT_FOUND, StateStoreHandle

OK = (0, None)
ABSENT = (1, NOT_FOUND)

stores = st.sampled_from(["", "s1", "s2", "größe", "店"])
keys = st.sampled_from(["", "k", "k2", "ключ", "😀", "a" * 40])
values = st.binary(max_size=24)
key_lists = st.lists(keys, max_size=6)


class NativeStoreMachine(RuleBasedStateMachine):
    """Every operation of the vtable and of the Python methods, on the native
    table and on ``model`` (store id -> key -> value; no empty stores)."""

    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStateStore()
        self.handle: StateStoreHandle | None = StateStoreVtableBuilder.build(self.store)
        assert self.handle.native
        self.c = Caller(self.handle.vtable)
        self.model: dict[str, dict[str, bytes]] = {}

    def _write(self, sid: str, key: str, value: bytes) -> None:
        self.model.setdefault(sid, {})[key] = value

    def _remove(self, sid: str, key: str) -> bool:
        store = self.model.get(sid)
        if store is None or key not in store:
            return False
        del store[key]
        if not store:
            del self.model[sid]
        return True

    # -- through the C vtable ---------------------------------------------

    @rule(sid=stores, key=keys, value=values)
    def c_set(self, sid: str, key: str, value: bytes) -> None:
        assert self.c.set(sid, key, value) == OK
        self._write(sid, key, value)

    @rule(sid=stores, key=keys)
    def c_get(self, sid: str, key: str) -> None:
        expected = self.model.get(sid, {}).get(key)
        got = self.c.get(sid, key)
        assert got == (("missing", None) if expected is None else ("found", expected))

    @rule(sid=stores, key=keys)
    def c_delete(self, sid: str, key: str) -> None:
        assert self.c.delete(sid, key) == OK
        self._remove(sid, key)

    @rule(sid=stores, key=keys)
    def c_contains_key(self, sid: str, key: str) -> None:
        expected = OK if key in self.model.get(sid, {}) else ABSENT
        assert self.c.contains_key(sid, key) == expected

    @rule(sid=stores, names=key_lists)
    def c_get_many(self, sid: str, names: list[str]) -> None:
        code, message, got = self.c.get_many(sid, names)
        assert (code, message) == OK
        store = self.model.get(sid, {})
        assert got == [("found", store[k]) if k in store else ("missing", None) for k in names]

    @rule(sid=stores, items=st.lists(st.tuples(keys, values), max_size=6))
    def c_set_many(self, sid: str, items: list[tuple[str, bytes]]) -> None:
        assert self.c.set_many(sid, items) == OK  # type: ignore[arg-type]
        for key, value in items:
            self._write(sid, key, value)

    @rule(sid=stores, names=key_lists)
    def c_delete_many(self, sid: str, names: list[str]) -> None:
        expected = sum(self._remove(sid, k) for k in names)
        assert self.c.delete_many(sid, names) == expected

    @rule(sid=stores)
    def c_clear_store(self, sid: str) -> None:
        expected = len(self.model.pop(sid, {}))
        assert self.c.clear_store(sid) == expected

    @rule(sid=stores)
    def c_list_keys(self, sid: str) -> None:
        assert self.c.list_keys(sid) == sorted(self.model.get(sid, {}))

    @rule(sid=stores)
    def c_store_exists(self, sid: str) -> None:
        assert self.c.store_exists(sid) == (OK if sid in self.model else ABSENT)

    @rule(sid=stores)
    def c_key_count(self, sid: str) -> None:
        assert self.c.key_count(sid) == len(self.model.get(sid, {}))

    @rule()
    def c_sync(self) -> None:
        assert self.c.sync() == OK

    # -- through the Python methods -----------------------------------------

    @rule(sid=stores, key=keys, value=values)
    def py_set(self, sid: str, key: str, value: bytes) -> None:
        self.store.set(sid, key, value)
        self._write(sid, key, value)

    @rule(sid=stores, key=keys)
    def py_get(self, sid: str, key: str) -> None:
        assert self.store.get(sid, key) == self.model.get(sid, {}).get(key)

    @rule(sid=stores, key=keys)
    def py_delete(self, sid: str, key: str) -> None:
        assert self.store.delete(sid, key) == self._remove(sid, key)

    @rule(sid=stores, names=key_lists)
    def py_get_many(self, sid: str, names: list[str]) -> None:
        store = self.model.get(sid, {})
        assert self.store.get_many(sid, names) == {k: store[k] for k in names if k in store}

    @rule(sid=stores, items=st.lists(st.tuples(keys, values), max_size=6))
    def py_set_many(self, sid: str, items: list[tuple[str, bytes]]) -> None:
        self.store.set_many(sid, items)
        for key, value in items:
            self._write(sid, key, value)

    @rule(sid=stores, names=key_lists)
    def py_delete_many(self, sid: str, names: list[str]) -> None:
        expected = sum(self._remove(sid, k) for k in names)
        assert self.store.delete_many(sid, names) == expected

    @rule(sid=stores)
    def py_clear_store(self, sid: str) -> None:
        assert self.store.clear_store(sid) == len(self.model.pop(sid, {}))

    # -- a second vtable on the same table ------------------------------------

    @precondition(lambda self: self.handle is not None)
    @rule()
    def rebuild_vtable(self) -> None:
        assert self.handle is not None
        old = self.c
        self.handle.close()
        assert old.get("s1", "k") == ("error", "state store is closed")
        self.handle = StateStoreVtableBuilder.build(self.store)
        self.c = Caller(self.handle.vtable)

    @invariant()
    def contents_agree(self) -> None:
        for sid in ["", "s1", "s2", "größe", "店"]:
            expected = self.model.get(sid, {})
            assert self.store.key_count(sid) == len(expected)
            assert self.store.store_exists(sid) == bool(expected)
            assert self.store.list_keys(sid) == sorted(expected)
            assert self.store.contains_key(sid, "k") == ("k" in expected)

    def teardown(self) -> None:
        if self.handle is not None:
            self.handle.close()


TestNativeStore = NativeStoreMachine.TestCase
TestNativeStore.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# ---- single behaviours ---------------------------------------------------------


def test_native_only_for_exactly_memory_state_store() -> None:
    class Sub(MemoryStateStore):
        pass

    with StateStoreVtableBuilder.build(MemoryStateStore()) as native:
        assert native.native
    with StateStoreVtableBuilder.build(Sub()) as bridged:
        assert not bridged.native


def test_values_outlive_the_handle_and_the_python_reference() -> None:
    store = MemoryStateStore()
    handle = StateStoreVtableBuilder.build(store)
    c = Caller(handle.vtable)
    assert c.set("s", "k", b"kept") == OK
    handle.close()
    assert store.get("s", "k") == b"kept"
    assert store.list_keys("s") == ["k"]


def test_table_grows_and_shrinks() -> None:
    store = MemoryStateStore()
    with StateStoreVtableBuilder.build(store) as handle:
        c = Caller(handle.vtable)
        items = [(f"k{i}", i.to_bytes(4, "little")) for i in range(5000)]
        assert c.set_many("big", items) == OK  # type: ignore[arg-type]
        assert c.key_count("big") == 5000
        for i in range(0, 5000, 2):
            assert c.delete("big", f"k{i}") == OK
        assert c.key_count("big") == 2500
        for i in range(5000):
            expected = ("missing", None) if i % 2 == 0 else ("found", i.to_bytes(4, "little"))
            assert c.get("big", f"k{i}") == expected
        assert c.clear_store("big") == 2500
        assert c.store_exists("big") == ABSENT


def test_python_threads_and_the_vtable_share_the_table() -> None:
    store = MemoryStateStore()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(2000):
                store.set(f"t{n}", f"k{i % 50}", bytes([n, i % 256]))
                store.get(f"t{n}", f"k{i % 50}")
        except BaseException as exc:
            errors.append(exc)

    with StateStoreVtableBuilder.build(store) as handle:
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        c = Caller(handle.vtable)
        for i in range(2000):
            assert c.set("main", f"k{i % 50}", b"x") == OK
        for t in threads:
            t.join()
        assert not errors
        for n in range(4):
            assert c.key_count(f"t{n}") == 50


@pytest.mark.parametrize(
    "bad", [b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"a\xe2\x82"]
)
def test_native_refuses_what_strict_utf8_refuses(bad: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        bad.decode("utf-8")
    with StateStoreVtableBuilder.build(MemoryStateStore()) as handle:
        c = Caller(handle.vtable)
        kind, message = c.get("s", bad)
        assert kind == "error" and isinstance(message, str) and "invalid UTF-8" in message
        code, message = c.set("s", bad, b"v")
        assert code == 1 and message is not None and "state store key" in message
        assert c.key_count("s") == 0


@pytest.mark.parametrize(
    "good", ["ü", "€", "😀", "\U0010ffff", "\ud7ff", "\ue000", "a\x00b"], ids=ascii
)
def test_native_accepts_what_strict_utf8_accepts(good: str) -> None:
    store = MemoryStateStore()
    with StateStoreVtableBuilder.build(store) as handle:
        c = Caller(handle.vtable)
        assert c.set(good, good, b"v") == OK
        assert store.get(good, good) == b"v"
        assert c.list_keys(good) == [good]


def test_get_many_null_keys_and_set_many_null_arrays_are_errors() -> None:
    with StateStoreVtableBuilder.build(MemoryStateStore()) as handle:
        c = Caller(handle.vtable)
        sid = ffi.new("FfiStr *", {"ptr": ffi.NULL, "len": 0})[0]
        out = ffi.new("FfiGetResult[]", 2)
        code, message = c.take_result(c.vt.get_many_fn(c.state, sid, ffi.NULL, 2, out))
        assert code == 1 and message is not None and "NULL array" in message
        keys = ffi.new("FfiStr[]", 1)
        code, message = c.take_result(c.vt.set_many_fn(c.state, sid, keys, ffi.NULL, ffi.NULL, 1))
        assert code == 1 and message is not None and "NULL value or length array" in message
        assert c.delete_many("", []) == 0


# ---- the C code alone, under sanitizers ------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
_MALLOC_DEBUG_ENV = ("LD_PRELOAD", "MALLOC_CHECK_", "MALLOC_PERTURB_")


@pytest.mark.parametrize("sanitizer", ["address,undefined", "thread"])
def test_native_table_under_sanitizers(sanitizer: str, tmp_path: Path) -> None:
    """tests/c/memstore_stress.c: native threads on every vtable function while
    bindings come and go; no leak, no use after free, no data race."""
    exe = tmp_path / "memstore_stress"
    cc = sysconfig.get_config_var("CC") or "cc"
    build = subprocess.run(
        [*cc.split()[:1], "-std=c11", "-O1", "-g", "-fno-omit-frame-pointer",
         f"-fsanitize={sanitizer}", "-fno-sanitize-recover=all", "-pthread",
         "-D_POSIX_C_SOURCE=200809L", f"-I{ROOT / 'cdefs'}", f"-I{ROOT / 'ffi_build'}",
         "-o", str(exe), str(ROOT / "tests" / "c" / "memstore_stress.c"),
         str(ROOT / "ffi_build" / "memstore.c")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if build.returncode != 0 and "sanitize" in build.stderr:
        pytest.skip(f"the compiler cannot build with -fsanitize={sanitizer}: {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr
    # The sanitizer runtime brings its own allocator checks: glibc's debugging
    # allocator (which the memcheck env preloads) must not be stacked on it.
    env = {k: v for k, v in os.environ.items() if k not in _MALLOC_DEBUG_ENV}
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "memstore_stress: ok" in run.stdout
    assert "Sanitizer" not in run.stderr
