"""The state store a plugin uses, and the C vtable that lets it reach one.

A plugin keeps key/value state in named stores (``store_id``) through the
``StateStoreVtable`` the host passes in ``FfiRuntimeContext`` (ABI.md
section 8).  The host side has three parts:

* :class:`StateStoreProvider`, the protocol any Python store implements
  (each method a plain function or a coroutine function), with two
  implementations: :class:`MemoryStateStore` and the persistent
  :class:`SqliteStateStore`;
* :class:`StateStoreVtableBuilder`, which registers a provider in the callback
  handle table and fills a host-owned ``StateStoreVtable`` whose functions are
  the C shims of ``drasi_host._ffi``; the returned :class:`StateStoreHandle`
  keeps the block and the provider alive until :meth:`StateStoreHandle.close`;
* the ``extern "Python"`` functions those shims call (``dh_py_ss_*``), one per
  vtable entry.  They run on the plugin's thread, copy their arguments,
  call the provider (plain methods directly; coroutines on the event loop,
  see :mod:`drasi_host.bridges._dispatch`), and answer with C-heap buffers the
  plugin frees.  A provider exception always becomes an error result (never
  "not found"); counts answer ``-1`` on error and the error is logged on the
  ``drasi_host.bridges`` logger.  A call whose ``state`` key has been closed
  is answered with the error ``state store is closed``.

Absence is reported exactly as ABI.md section 11.3 settles it:
``contains_key_fn``/``store_exists_fn`` answer an error with the message
``not_found``; deleting a missing key succeeds.  A store *exists* when it holds
at least one key.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from .. import _abi
from .._abi import CData, ffi
from .._callbacks import c_callback, handles
from ._dispatch import BridgeError, LoopPortal, failure_message, log, required_method
from ._handle import VtableHandle

__all__ = [
    "MAX_VALUE_LEN",
    "NOT_FOUND",
    "MemoryStateStore",
    "SqliteStateStore",
    "StateStoreHandle",
    "StateStoreProvider",
    "StateStoreVtableBuilder",
]

#: Largest single value (bytes) a plugin may write through the vtable.
MAX_VALUE_LEN = 64 * 1024 * 1024
#: The error message that means "absent" for ``contains_key_fn``/``store_exists_fn``.
NOT_FOUND = "not_found"

_CLOSED = "state store is closed"


class StateStoreProvider(Protocol):
    """A key/value store partitioned by ``store_id``.

    Every method may be a plain method or a coroutine function; coroutines
    run on the host's event loop.  Keys are text, values are bytes (an empty
    value is a value, distinct from a missing key).  A store exists while it
    holds at least one key.
    """

    def get(self, store_id: str, key: str) -> bytes | Awaitable[bytes | None] | None:
        """The value of ``key``, or None when it is missing."""
        ...

    def set(self, store_id: str, key: str, value: bytes) -> Awaitable[None] | None:
        """Create or replace ``key``."""
        ...

    def delete(self, store_id: str, key: str) -> bool | Awaitable[bool]:
        """Remove ``key``; True when it was present (a missing key is not an error)."""
        ...

    def contains_key(self, store_id: str, key: str) -> bool | Awaitable[bool]:
        """Whether ``key`` is present."""
        ...

    def get_many(
        self, store_id: str, keys: Sequence[str]
    ) -> Mapping[str, bytes] | Awaitable[Mapping[str, bytes]]:
        """The values of the keys that are present, by key; missing keys are absent.

        (The bridge also accepts a sequence aligned with ``keys``, with None
        for a missing key.)
        """
        ...

    def set_many(self, store_id: str, items: Sequence[tuple[str, bytes]]) -> Awaitable[None] | None:
        """Create or replace several keys, atomically where the store can."""
        ...

    def delete_many(self, store_id: str, keys: Sequence[str]) -> int | Awaitable[int]:
        """Remove several keys; the number that were present."""
        ...

    def clear_store(self, store_id: str) -> int | Awaitable[int]:
        """Remove every key of the store; the number removed."""
        ...

    def list_keys(self, store_id: str) -> list[str] | Awaitable[list[str]]:
        """The keys of the store."""
        ...

    def store_exists(self, store_id: str) -> bool | Awaitable[bool]:
        """Whether the store holds at least one key."""
        ...

    def key_count(self, store_id: str) -> int | Awaitable[int]:
        """The number of keys in the store."""
        ...

    def sync(self) -> Awaitable[None] | None:
        """Make every completed write durable (a no-op for volatile stores)."""
        ...


# ---------------------------------------------------------------- in memory

_lib = _abi.lib
_NULL = ffi.NULL


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _native_error(err: CData, op: str) -> RuntimeError:
    message = _abi.take_error_msg(err[0]) or "failed"
    return RuntimeError(f"MemoryStateStore.{op}: {message}")


class _KeyArray:
    """A ``const FfiStr *`` array over UTF-8 copies of ``keys``, kept alive
    as long as this object."""

    __slots__ = ("array", "keep", "n")

    def __init__(self, keys: Sequence[str]) -> None:
        self.n = len(keys)
        self.keep = [ffi.from_buffer(_utf8(k)) for k in keys]
        self.array = ffi.new("FfiStr[]", max(self.n, 1))
        for i, buf in enumerate(self.keep):
            self.array[i].ptr = buf
            self.array[i].len = len(buf)


class MemoryStateStore:
    """A volatile :class:`StateStoreProvider` kept in a native hash table.

    The table lives in the compiled module (``ffi_build/memstore.c``) behind
    one lock, so concurrent calls from any number of threads are safe.  When
    :class:`StateStoreVtableBuilder` builds a vtable for exactly this class,
    the vtable's functions are that C code: a plugin's calls never enter
    Python.  The methods below read and write the same table, so a plugin's
    writes are visible here and the other way round.  A subclass (which may
    override methods) is bridged through Python like any other provider.
    ``list_keys`` returns the keys sorted.
    """

    def __init__(self) -> None:
        native = _lib.dh_mem_new()
        if native == _NULL:
            raise MemoryError("MemoryStateStore: out of memory")
        self._native: CData = ffi.gc(native, _lib.dh_mem_release)

    def get(self, store_id: str, key: str) -> bytes | None:
        sid = _utf8(store_id)
        k = _utf8(key)
        r = _lib.dh_mem_get(self._native, sid, len(sid), k, len(k))
        if r.error_code:
            message = _abi.take_error_msg(r.error_msg)
            raise RuntimeError(f"MemoryStateStore.get: {message}")
        if not r.found:
            return None
        n = r.len
        if not n:
            return b""
        value: bytes = ffi.unpack(ffi.cast("char *", r.data), n)
        _lib.free(r.data)
        return value

    def set(self, store_id: str, key: str, value: bytes) -> None:
        sid = _utf8(store_id)
        k = _utf8(key)
        data = ffi.from_buffer("uint8_t[]", value)
        err = ffi.new("char **")
        if _lib.dh_mem_set(self._native, sid, len(sid), k, len(k), data, len(data), err) < 0:
            raise _native_error(err, "set")

    def delete(self, store_id: str, key: str) -> bool:
        sid = _utf8(store_id)
        k = _utf8(key)
        err = ffi.new("char **")
        removed = _lib.dh_mem_delete(self._native, sid, len(sid), k, len(k), err)
        if removed < 0:
            raise _native_error(err, "delete")
        return bool(removed)

    def contains_key(self, store_id: str, key: str) -> bool:
        sid = _utf8(store_id)
        k = _utf8(key)
        err = ffi.new("char **")
        found = _lib.dh_mem_contains(self._native, sid, len(sid), k, len(k), err)
        if found < 0:
            raise _native_error(err, "contains_key")
        return bool(found)

    def get_many(self, store_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        keys = list(keys)
        if not keys:
            return {}
        sid = _utf8(store_id)
        names = _KeyArray(keys)
        out = ffi.new("FfiGetResult[]", names.n)
        err = ffi.new("char **")
        if _lib.dh_mem_get_many(self._native, sid, len(sid), names.array, names.n, out, err):
            raise _native_error(err, "get_many")
        found: dict[str, bytes] = {}
        for i, key in enumerate(keys):
            r = out[i]
            if not r.found:
                continue
            if r.len:
                found[key] = ffi.unpack(ffi.cast("char *", r.data), r.len)
                _lib.free(r.data)
            else:
                found[key] = b""
        return found

    def set_many(self, store_id: str, items: Sequence[tuple[str, bytes]]) -> None:
        items = list(items)
        if not items:
            return
        sid = _utf8(store_id)
        names = _KeyArray([key for key, _ in items])
        data = [ffi.from_buffer("uint8_t[]", value) for _, value in items]
        values = ffi.new("uint8_t *[]", data)
        lens = ffi.new("size_t[]", [len(d) for d in data])
        err = ffi.new("char **")
        if _lib.dh_mem_set_many(
            self._native, sid, len(sid), names.array, values, lens, names.n, _SIZE_MAX, err
        ):
            raise _native_error(err, "set_many")

    def delete_many(self, store_id: str, keys: Sequence[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0
        sid = _utf8(store_id)
        names = _KeyArray(keys)
        err = ffi.new("char **")
        removed = _lib.dh_mem_delete_many(self._native, sid, len(sid), names.array, names.n, err)
        if removed < 0:
            raise _native_error(err, "delete_many")
        return int(removed)

    def clear_store(self, store_id: str) -> int:
        sid = _utf8(store_id)
        err = ffi.new("char **")
        removed = _lib.dh_mem_clear_store(self._native, sid, len(sid), err)
        if removed < 0:
            raise _native_error(err, "clear_store")
        return int(removed)

    def list_keys(self, store_id: str) -> list[str]:
        sid = _utf8(store_id)
        err = ffi.new("char **")
        array = _lib.dh_mem_list_keys(self._native, sid, len(sid), err)
        if err[0] != _NULL:
            raise _native_error(err, "list_keys")
        return _abi.take_string_array(array, "list_keys")

    def store_exists(self, store_id: str) -> bool:
        sid = _utf8(store_id)
        err = ffi.new("char **")
        exists = _lib.dh_mem_store_exists(self._native, sid, len(sid), err)
        if exists < 0:
            raise _native_error(err, "store_exists")
        return bool(exists)

    def key_count(self, store_id: str) -> int:
        sid = _utf8(store_id)
        err = ffi.new("char **")
        count = _lib.dh_mem_key_count(self._native, sid, len(sid), err)
        if count < 0:
            raise _native_error(err, "key_count")
        return int(count)

    def sync(self) -> None:
        return None


_SIZE_MAX = 2 ** (8 * ffi.sizeof("size_t")) - 1


# ------------------------------------------------------------------- SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drasi_state (
    store_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store_id, key)
) WITHOUT ROWID
"""
#: Pages written to the WAL between automatic checkpoints (SQLite's default
#: is 1000; each checkpoint flushes the disk, so fewer of them cost less).
WAL_CHECKPOINT_PAGES = 4000
#: Keys per ``IN (...)`` query (below SQLite's oldest host-parameter limit, 999).
_CHUNK = 512
#: Create or replace a key.  An upsert updates the row in place; ``INSERT OR
#: REPLACE`` deletes and re-inserts it, which writes about three times as much
#: (measured: 13 vs 4 us per single-key transaction).
_UPSERT = (
    "INSERT INTO drasi_state (store_id, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (store_id, key) DO UPDATE SET value = excluded.value"
)


def _in_marks(n: int) -> int:
    """How many ``?`` to put in an ``IN (...)`` list for ``n`` keys: the next
    power of two (the list is padded by repeating a key), so that a handful of
    statement texts stay in the connection's statement cache instead of one
    per batch size evicting the single-key statements."""
    return 1 << (n - 1).bit_length()


class SqliteStateStore:
    """A persistent :class:`StateStoreProvider` in one SQLite file.

    One table ``drasi_state(store_id, key, value BLOB)`` with the primary key
    ``(store_id, key)``; the database runs in WAL mode.  One connection is
    shared by all threads behind a lock, so concurrent calls from several
    plugin threads are safe (and serialised).  Every single-key write is its
    own transaction; ``set_many`` and ``delete_many`` are one transaction each.

    ``synchronous`` is SQLite's ``PRAGMA synchronous``: with the default
    ``"NORMAL"`` a committed write survives the host process crashing, and
    :meth:`sync` checkpoints the WAL into the database file so it also
    survives a power loss; ``"FULL"`` makes every commit durable at once, at
    the cost of one disk flush per write.  ``list_keys`` returns the keys
    sorted.  Call :meth:`close` (or use ``with``) when done.

    With ``exclusive=True`` (the default) the file is locked for this store
    while it is open: SQLite then keeps the WAL index in process memory
    instead of a shared-memory file and takes no file locks per transaction,
    which roughly halves the cost of a single-key write; no other connection
    or process can open the file meanwhile.  ``exclusive=False`` shares it.
    The WAL is checkpointed automatically every :data:`WAL_CHECKPOINT_PAGES`
    pages (each automatic checkpoint flushes to disk; :meth:`sync` always
    checkpoints and flushes everything at once).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        exclusive: bool = True,
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            if exclusive:  # before the first WAL access, so no shared memory is used
                conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"SqliteStateStore({self.path!r}, {state})"

    def _db(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise RuntimeError(f"SqliteStateStore {self.path!r} is closed")
        return conn

    def close(self) -> None:
        """Close the database (idempotent); later calls raise RuntimeError."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> SqliteStateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write_many(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> int:
        """Run ``sql`` once per row in one transaction; the rows changed."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                changed = db.executemany(sql, rows).rowcount
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return max(changed, 0)

    def get(self, store_id: str, key: str) -> bytes | None:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT value FROM drasi_state WHERE store_id = ? AND key = ?",
                    (store_id, key),
                )
                .fetchone()
            )
        return None if row is None else bytes(row[0])

    def set(self, store_id: str, key: str, value: bytes) -> None:
        with self._lock:
            self._db().execute(_UPSERT, (store_id, key, bytes(value)))

    def delete(self, store_id: str, key: str) -> bool:
        with self._lock:
            cur = self._db().execute(
                "DELETE FROM drasi_state WHERE store_id = ? AND key = ?", (store_id, key)
            )
            return cur.rowcount > 0

    def contains_key(self, store_id: str, key: str) -> bool:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT 1 FROM drasi_state WHERE store_id = ? AND key = ?", (store_id, key)
                )
                .fetchone()
            )
        return row is not None

    def get_many(self, store_id: str, keys: Sequence[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        with self._lock:
            db = self._db()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                padding = _in_marks(len(chunk)) - len(chunk)
                chunk += chunk[-1:] * padding
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, value FROM drasi_state WHERE store_id = ? AND key IN ({marks})",
                    (store_id, *chunk),
                )
                found.update((k, bytes(v)) for k, v in rows)
        return found

    def set_many(self, store_id: str, items: Sequence[tuple[str, bytes]]) -> None:
        rows = [(store_id, key, bytes(value)) for key, value in items]
        if rows:
            self._write_many(_UPSERT, rows)

    def delete_many(self, store_id: str, keys: Sequence[str]) -> int:
        rows = [(store_id, key) for key in keys]
        if not rows:
            return 0
        return self._write_many("DELETE FROM drasi_state WHERE store_id = ? AND key = ?", rows)

    def clear_store(self, store_id: str) -> int:
        with self._lock:
            cur = self._db().execute("DELETE FROM drasi_state WHERE store_id = ?", (store_id,))
            return max(cur.rowcount, 0)

    def list_keys(self, store_id: str) -> list[str]:
        with self._lock:
            rows = (
                self._db()
                .execute("SELECT key FROM drasi_state WHERE store_id = ? ORDER BY key", (store_id,))
                .fetchall()
            )
        return [str(row[0]) for row in rows]

    def store_exists(self, store_id: str) -> bool:
        with self._lock:
            row = (
                self._db()
                .execute("SELECT 1 FROM drasi_state WHERE store_id = ? LIMIT 1", (store_id,))
                .fetchone()
            )
        return row is not None

    def key_count(self, store_id: str) -> int:
        with self._lock:
            row = (
                self._db()
                .execute("SELECT COUNT(*) FROM drasi_state WHERE store_id = ?", (store_id,))
                .fetchone()
            )
        return int(row[0])

    def sync(self) -> None:
        """Checkpoint the WAL into the database file (flushed to disk)."""
        with self._lock:
            self._db().execute("PRAGMA wal_checkpoint(FULL)")


# ------------------------------------------------------------------- bridge

_OPS = (
    "get",
    "set",
    "delete",
    "contains_key",
    "get_many",
    "set_many",
    "delete_many",
    "clear_store",
    "list_keys",
    "store_exists",
    "key_count",
    "sync",
)


class _Bridge:
    """What the handle table holds for one vtable: the provider's methods,
    each adapted to a plain call, and the drop bookkeeping."""

    __slots__ = (
        "calls_after_drop",
        "clear_store",
        "contains_key",
        "delete",
        "delete_many",
        "drop_calls",
        "get",
        "get_many",
        "key_count",
        "list_keys",
        "lock",
        "max_value_len",
        "set",
        "set_many",
        "store_exists",
        "sync",
    )

    get: Callable[..., Any]
    set: Callable[..., Any]
    delete: Callable[..., Any]
    contains_key: Callable[..., Any]
    get_many: Callable[..., Any]
    set_many: Callable[..., Any]
    delete_many: Callable[..., Any]
    clear_store: Callable[..., Any]
    list_keys: Callable[..., Any]
    store_exists: Callable[..., Any]
    key_count: Callable[..., Any]
    sync: Callable[..., Any]

    def __init__(self, provider: StateStoreProvider, max_value_len: int) -> None:
        portal = LoopPortal(f"state store {type(provider).__name__}")
        for name in _OPS:
            method = required_method(provider, name, "a StateStoreProvider")
            setattr(self, name, portal.adapt(method, name))
        self.max_value_len = max_value_len
        self.lock = threading.Lock()
        self.drop_calls = 0
        self.calls_after_drop = 0


class _NativeBinding:
    """What the handle table holds for a vtable that reaches a
    :class:`MemoryStateStore`'s native table directly: the C binding of the
    same key, its drop bookkeeping (kept in C while bound) and its release."""

    __slots__ = ("_counts", "_final", "key", "store")

    def __init__(self, store: MemoryStateStore, max_value_len: int) -> None:
        self.store = store  # keeps the Python owner (and so the table) alive
        self.key = handles.add(self)
        if _lib.dh_mem_bind(self.key, store._native, max_value_len) != 0:
            handles.remove(self.key)
            raise MemoryError("state store: cannot bind the native table")
        self._counts = ffi.new("int64_t[2]")
        self._final: tuple[int, int] | None = None

    def counts(self) -> tuple[int, int]:
        """(drop_fn calls, calls after the first drop_fn)."""
        if self._final is not None:
            return self._final
        counts = self._counts
        if _lib.dh_mem_binding_counts(self.key, counts, counts + 1) != 0:
            return (0, 0)
        return int(counts[0]), int(counts[1])

    @property
    def drop_calls(self) -> int:
        return self.counts()[0]

    @property
    def calls_after_drop(self) -> int:
        return self.counts()[1]

    def release(self) -> None:
        """Unbind (later calls through the vtable answer "state store is
        closed") and log what the plugin got wrong, as the Python bridge
        does when it happens."""
        drops, late = self._final = self.counts()
        _lib.dh_mem_unbind(self.key)
        handles.remove(self.key)
        if drops > 1:
            log.warning("a plugin called the state store drop_fn %d times", drops)
        if late:
            log.warning("a plugin used its state store after calling drop_fn")


class StateStoreHandle(VtableHandle[StateStoreProvider]):
    """A built ``StateStoreVtable`` and what keeps it working.

    ``vtable`` is the ``StateStoreVtable *`` to put in ``FfiRuntimeContext``;
    the block is host-owned and lives as long as this handle.  The plugin's
    ``drop_fn`` only marks the handle dropped; :meth:`close` (after the
    component's own ``drop_fn`` has returned) unregisters the provider, and
    from then on every call through the vtable is answered with an error.
    Closing is idempotent and also happens when the handle is collected.

    For a provider that is exactly a :class:`MemoryStateStore` the vtable's
    functions are the native table's own (``native`` is True): no call
    enters Python.  Every other provider, subclasses included, is called
    through the Python bridge.
    """

    def __init__(self, provider: StateStoreProvider, max_value_len: int) -> None:
        if type(provider) is MemoryStateStore:
            native = _NativeBinding(provider, max_value_len)
            self._bridge: _Bridge | _NativeBinding = native
            super().__init__(
                provider,
                native,
                native.key,
                "StateStoreVtable",
                _lib.dh_mem_vtable_init,
                native.release,
            )
            return
        bridge = self._bridge = _Bridge(provider, max_value_len)
        key = handles.add(bridge)
        super().__init__(
            provider,
            bridge,
            key,
            "StateStoreVtable",
            _lib.dh_state_store_vtable_init,
            functools.partial(handles.remove, key),
        )

    @property
    def native(self) -> bool:
        """Whether the plugin's calls reach a native table without Python."""
        return type(self._bridge) is _NativeBinding

    @property
    def calls_after_drop(self) -> int:
        """Calls the plugin made after its ``drop_fn`` (a plugin bug; still served)."""
        return self._bridge.calls_after_drop


class StateStoreVtableBuilder:
    """Builds the ``StateStoreVtable`` through which a plugin uses a provider."""

    @staticmethod
    def build(
        provider: StateStoreProvider, *, max_value_len: int = MAX_VALUE_LEN
    ) -> StateStoreHandle:
        """Register ``provider`` and fill a fresh host-owned vtable for it.

        Call it on the event loop thread when the provider has coroutine
        methods (the loop they run on is the one running here).  A plugin
        value larger than ``max_value_len`` bytes is refused with an error.
        """
        return StateStoreHandle(provider, max_value_len)


# ------------------------------------------------- extern "Python" functions


_read_str = _abi.read_str
_lookup = handles.get
_cast = ffi.cast
_UINTPTR = ffi.typeof("uintptr_t")
_found_copy = _lib.dh_get_found_copy
#: The success result; returning it hands C a copy (never mutated here).
_OK = _abi.ok_result()
#: "Not found" (no allocation inside, so handing C copies of it is safe).
_NOT_FOUND = _abi.get_not_found()


def _bridge(state: CData) -> _Bridge:
    bridge = _lookup(int(_cast(_UINTPTR, state)))
    if type(bridge) is not _Bridge:
        raise BridgeError(_CLOSED)
    if bridge.drop_calls:
        _note_call_after_drop(bridge)
    return bridge


def _note_call_after_drop(bridge: _Bridge) -> None:
    with bridge.lock:
        bridge.calls_after_drop += 1
        first = bridge.calls_after_drop == 1
    if first:
        log.warning("a plugin used its state store after calling drop_fn")


def _store_id(value: CData) -> str:
    return _read_str(value, "state store id")


def _key(value: CData) -> str:
    return _read_str(value, "state store key")


def _as_bytes(value: object, op: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"state store {op}() returned {type(value).__name__}, expected bytes")


def _count(value: object, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"state store {op}() returned {value!r}, expected a count >= 0")
    return value


def _result_error(exc: BaseException) -> CData:
    return _abi.error_result(failure_message(exc))


def _get_error(exc: BaseException) -> CData:
    return _abi.get_error(failure_message(exc))


def _count_error(op: str) -> Any:
    def on_error(exc: BaseException) -> int:
        log.error("state store %s failed: %s", op, failure_message(exc))
        return -1

    return on_error


def _keys_error(exc: BaseException) -> CData:
    log.error("state store list_keys failed: %s", failure_message(exc))
    return _abi.string_array([])


def _drop_error(exc: BaseException) -> None:
    return None


@ffi.def_extern(name="dh_py_ss_get")  # type: ignore[untyped-decorator]
@c_callback(_get_error)
def _ss_get(state: CData, store_id: CData, key: CData) -> CData:
    # the hot path: helpers inlined, the answer built by one C call
    bridge = _lookup(int(_cast(_UINTPTR, state)))
    if type(bridge) is not _Bridge:
        raise BridgeError(_CLOSED)
    if bridge.drop_calls:
        _note_call_after_drop(bridge)
    value = bridge.get(_read_str(store_id, "state store id"), _read_str(key, "state store key"))
    if value is None:
        return _NOT_FOUND
    if type(value) is not bytes:
        value = _as_bytes(value, "get")
    return _found_copy(value, len(value))


@ffi.def_extern(name="dh_py_ss_set")  # type: ignore[untyped-decorator]
@c_callback(_result_error)
def _ss_set(state: CData, store_id: CData, key: CData, value: CData, value_len: int) -> CData:
    bridge = _lookup(int(_cast(_UINTPTR, state)))
    if type(bridge) is not _Bridge:
        raise BridgeError(_CLOSED)
    if bridge.drop_calls:
        _note_call_after_drop(bridge)
    data = _abi.read_bytes(value, value_len, "state store value", bridge.max_value_len)
    bridge.set(_read_str(store_id, "state store id"), _read_str(key, "state store key"), data)
    return _OK


@ffi.def_extern(name="dh_py_ss_delete")  # type: ignore[untyped-decorator]
@c_callback(_result_error)
def _ss_delete(state: CData, store_id: CData, key: CData) -> CData:
    _bridge(state).delete(_store_id(store_id), _key(key))
    return _OK


@ffi.def_extern(name="dh_py_ss_contains_key")  # type: ignore[untyped-decorator]
@c_callback(_result_error)
def _ss_contains_key(state: CData, store_id: CData, key: CData) -> CData:
    if _bridge(state).contains_key(_store_id(store_id), _key(key)):
        return _OK
    return _abi.error_result(NOT_FOUND)


@ffi.def_extern(name="dh_py_ss_get_many")  # type: ignore[untyped-decorator]
@c_callback(_result_error)
def _ss_get_many(state: CData, store_id: CData, keys: CData, n: int, out_values: CData) -> CData:
    bridge = _bridge(state)
    sid = _store_id(store_id)
    names = _abi.read_str_array(keys, n, "state store keys")
    if n and out_values == _abi.NULL:
        raise BridgeError(f"state store get_many: NULL out_values for {n} keys")
    found = bridge.get_many(sid, names) if names else {}
    if isinstance(found, Mapping):
        values = [found.get(name) for name in names]
    elif isinstance(found, Sequence) and len(found) == len(names):
        values = list(found)
    else:
        raise TypeError(
            f"state store get_many() returned {type(found).__name__}, expected a mapping "
            f"of key to bytes (or a sequence of {len(names)} values)"
        )
    built: list[CData] = []
    try:
        for value in values:
            built.append(
                _abi.get_not_found()
                if value is None
                else _abi.get_found(_as_bytes(value, "get_many"))
            )
    except BaseException:
        for item in built:
            _abi.discard_get_result(item)
        raise
    for i, item in enumerate(built):
        out_values[i] = item
    return _OK


@ffi.def_extern(name="dh_py_ss_set_many")  # type: ignore[untyped-decorator]
@c_callback(_result_error)
def _ss_set_many(
    state: CData, store_id: CData, keys: CData, values: CData, value_lens: CData, n: int
) -> CData:
    bridge = _bridge(state)
    sid = _store_id(store_id)
    names = _abi.read_str_array(keys, n, "state store keys")
    data = _abi.read_bytes_array(values, value_lens, n, "state store values", bridge.max_value_len)
    if names:
        bridge.set_many(sid, list(zip(names, data, strict=True)))
    return _OK


@ffi.def_extern(name="dh_py_ss_delete_many")  # type: ignore[untyped-decorator]
@c_callback(_count_error("delete_many"))
def _ss_delete_many(state: CData, store_id: CData, keys: CData, n: int) -> int:
    bridge = _bridge(state)
    sid = _store_id(store_id)
    names = _abi.read_str_array(keys, n, "state store keys")
    if not names:
        return 0
    return _count(bridge.delete_many(sid, names), "delete_many")


@ffi.def_extern(name="dh_py_ss_clear_store")  # type: ignore[untyped-decorator]
@c_callback(_count_error("clear_store"))
def _ss_clear_store(state: CData, store_id: CData) -> int:
    return _count(_bridge(state).clear_store(_store_id(store_id)), "clear_store")


@ffi.def_extern(name="dh_py_ss_list_keys")  # type: ignore[untyped-decorator]
@c_callback(_keys_error)
def _ss_list_keys(state: CData, store_id: CData) -> CData:
    keys = _bridge(state).list_keys(_store_id(store_id))
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise TypeError("state store list_keys() must return a list of str")
    return _abi.string_array(keys)


@ffi.def_extern(name="dh_py_ss_store_exists")  # type: ignore[untyped-decorator]
@c_callback(_result_error)
def _ss_store_exists(state: CData, store_id: CData) -> CData:
    if _bridge(state).store_exists(_store_id(store_id)):
        return _OK
    return _abi.error_result(NOT_FOUND)


@ffi.def_extern(name="dh_py_ss_key_count")  # type: ignore[untyped-decorator]
@c_callback(_count_error("key_count"))
def _ss_key_count(state: CData, store_id: CData) -> int:
    return _count(_bridge(state).key_count(_store_id(store_id)), "key_count")


@ffi.def_extern(name="dh_py_ss_sync")  # type: ignore[untyped-decorator]
@c_callback(_result_error)
def _ss_sync(state: CData) -> CData:
    _bridge(state).sync()
    return _OK


@ffi.def_extern(name="dh_py_ss_drop")  # type: ignore[untyped-decorator]
@c_callback(_drop_error)
def _ss_drop(state: CData) -> None:
    bridge = handles.get(_abi.ctx_key(state))
    if type(bridge) is not _Bridge:
        return  # already closed: nothing left to mark
    with bridge.lock:
        bridge.drop_calls += 1
        calls = bridge.drop_calls
    if calls > 1:
        log.warning("a plugin called the state store drop_fn %d times", calls)
