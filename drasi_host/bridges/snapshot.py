"""The snapshot fetcher of a 0.13 reaction: ``SnapshotFetcherVtable`` for
``FfiRuntimeContext.snapshot_fetcher`` (ABI-0.13.md sections 6, 8 and 10).

A reaction calls ``fetch_snapshot_fn(state, query_id)`` from one of its
blocking threads to get the current rows of any query.  The host answers
with an ``FfiSnapshotIteratorResponse``:

* on success, an iterator over the rows as JSON text of ``KeyedSnapshotRow``,
  ``{"k":0,"v":<row>}`` (``k == 0``: the row signature is unknown), each a
  C-heap ``FfiOwnedStr`` the plugin frees, then an empty string (non-NULL
  pointer, ``cap == 0``) once exhausted; ``next_fn`` and ``drop_fn`` are C
  functions of ``drasi_host._ffi013`` that need no interpreter, and the
  plugin calls ``drop_fn`` once, exhausted or not;
* on failure, a non-empty C-heap ``error`` and no iterator state at all (the
  plugin then never calls ``next_fn`` or ``drop_fn``).

The rows come from a Python :class:`~drasi_host.protocols.SnapshotFetcher`:
``fetch_snapshot(query_id)`` returning an iterable (or async iterable) of
mappings, as a plain function (called on the plugin thread), a coroutine
function (run on the event loop captured when the vtable was built), or an
async generator function.  Every row is taken and serialised before the
response is built, so any failure (the fetcher raising, a row that is not a
mapping or not JSON-serialisable) is reported through ``error`` instead of
cutting the snapshot short.

The vtable's ``state`` is a key in :data:`drasi_host._callbacks.handles`.
The plugin keeps the block and calls ``drop_fn(state)`` once when it is done;
the block stays allocated until then (for the life of the process if that
never happens, as upstream does).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

from .. import _abi, _abi013
from .._abi013 import CData, ffi, lib
from .._callbacks import c_callback, handles
from .._native import DropThread
from ._dispatch import BridgeError, LoopPortal, failure_message, log, required_method

__all__ = ["SnapshotFetcherHandle", "build_snapshot_fetcher013", "snapshot_row"]

# Blocks a plugin still holds, by state key: freed once the plugin drops the state.
_pinned: dict[int, CData] = {}
_pinned_lock = threading.Lock()


def snapshot_row(row: Any) -> bytes:
    """The ``KeyedSnapshotRow`` JSON text of one row (``k`` 0: unknown signature)."""
    if not isinstance(row, Mapping):
        raise TypeError(f"a snapshot row is a mapping, not {type(row).__name__}")
    text = json.dumps(dict(row), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return ('{"k":0,"v":' + text + "}").encode("utf-8")


async def _collect(rows: AsyncIterable[Any]) -> list[Any]:
    return [row async for row in rows]


class _Fetcher:
    """What the state key names: the handle (the key stays until the plugin drops it)."""

    __slots__ = ("handle",)

    def __init__(self, handle: SnapshotFetcherHandle) -> None:
        self.handle = handle


class SnapshotFetcherHandle:
    """What :func:`build_snapshot_fetcher013` returns: ``vtable`` (a
    ``SnapshotFetcherVtable *`` of ``drasi_host._ffi013``), counters, and
    :meth:`close`."""

    def __init__(self, fetcher: Any) -> None:
        fn = required_method(fetcher, "fetch_snapshot", "a SnapshotFetcher", "(query_id)")
        self.fetcher: Any = fetcher
        self._portal = LoopPortal(f"snapshot fetcher {type(fetcher).__name__}")
        self._fetch: Any = self._portal.adapt(fn, "fetch_snapshot")
        self._closed = False
        self._lock = threading.Lock()
        #: ``fetch_snapshot_fn`` calls answered (with rows or with an error).
        self.fetches = 0
        #: Rows handed to the plugin.
        self.rows_served = 0
        #: ``drop_fn`` calls taken (0 or 1: a repeated drop is ignored as a late call).
        self.drop_calls = 0
        self._entry = _Fetcher(self)
        self.key = handles.add(self._entry)
        block = ffi.new("SnapshotFetcherVtable *")
        lib.dh13_snapshot_fetcher_vtable_init(block, _abi013.key_ctx(self.key))
        self._vtable = block
        with _pinned_lock:
            _pinned[self.key] = block

    @property
    def vtable(self) -> CData:
        """The block for ``FfiRuntimeContext.snapshot_fetcher``."""
        return self._vtable

    @property
    def dropped(self) -> bool:
        return self.drop_calls > 0

    @property
    def closed(self) -> bool:
        return self._closed

    def rows(self, query_id: str) -> list[bytes]:
        """The serialised rows of ``query_id`` (runs on the calling plugin thread)."""
        fetch = self._fetch
        if fetch is None:
            raise BridgeError("snapshot fetcher is closed")
        result = fetch(query_id)
        if isinstance(result, AsyncIterable):
            result = self._portal.adapt(_collect, "fetch_snapshot")(result)
        if isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
            raise TypeError(
                f"fetch_snapshot({query_id!r}) returned {type(result).__name__}, "
                "not an iterable of rows"
            )
        out = []
        for i, row in enumerate(result):
            try:
                out.append(snapshot_row(row))
            except (TypeError, ValueError) as exc:
                raise BridgeError(f"snapshot row {i} of query {query_id!r}: {exc}") from None
        return out

    def close(self) -> None:
        """Forget the fetcher: later ``fetch_snapshot_fn`` calls get an error
        response.  The block stays until the plugin drops the state."""
        self._closed = True
        self._fetch = None
        self.fetcher = None

    def __enter__(self) -> SnapshotFetcherHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("dropped" if self.dropped else "open")
        return f"<SnapshotFetcherHandle {type(self.fetcher).__name__} key={self.key:#x} {state}>"


def build_snapshot_fetcher013(fetcher: Any) -> SnapshotFetcherHandle:
    """The 0.13 ``SnapshotFetcherVtable`` of ``fetcher`` for a reaction's
    ``FfiRuntimeContext`` (ABI-0.13.md sections 6 and 10).

    How the runtime-context code of a 0.13 reaction uses it:

    1. ``handle = build_snapshot_fetcher013(ctx.snapshot_fetcher)`` on the
       event loop thread, before ``initialize_fn`` (a coroutine or async
       generator ``fetch_snapshot`` runs on the loop running here), only when
       the :class:`~drasi_host.models.ReactionRuntimeContext` has one (else
       leave the field NULL).  TypeError for an object without
       ``fetch_snapshot``.
    2. ``rc.snapshot_fetcher = handle.vtable`` (``rc`` an
       ``FfiRuntimeContext *`` of ``drasi_host._ffi013``) and call
       ``initialize_fn``.  The plugin keeps the pointer: the block is pinned
       by this module until the plugin calls ``drop_fn`` (the handle may be
       dropped by the caller at any time without freeing it).
    3. Keep the handle with the reaction's host services and call
       ``handle.close()`` once the reaction's own ``drop_fn`` has returned (or
       at once when ``initialize_fn`` was never called).  Never call the
       vtable's ``drop_fn`` yourself: only the plugin does, once.
    """
    return SnapshotFetcherHandle(fetcher)


# ------------------------------------------------- extern "Python" functions


def _failed(exc: BaseException) -> int:
    return -1


def _unpin(key: int) -> None:
    with _pinned_lock:
        _pinned.pop(key, None)


def _respond_error(out: CData, message: str) -> None:
    data = message.encode("utf-8", errors="replace").replace(b"\x00", b"\\0")
    lib.dh13_snapshot_response_error(out, data, len(data))


@ffi.def_extern(name="dh13_py_snapshot_fetch")  # type: ignore[untyped-decorator]
@c_callback(_failed)
def _snapshot_fetch(state: CData, query_id: CData, out: CData) -> int:
    found = handles.get(_abi013.ctx_key(state))
    if type(found) is not _Fetcher or found.handle.closed:
        _respond_error(out, "snapshot fetcher is closed")
        return 0
    handle = found.handle
    with handle._lock:
        handle.fetches += 1
    try:
        qid = _abi.read_str(query_id, "snapshot query id")
        rows = handle.rows(qid)
    except Exception as exc:
        log.debug("snapshot fetch failed: %r", exc)
        _respond_error(out, f"snapshot fetch failed: {failure_message(exc)}")
        return 0
    lens = ffi.new("size_t[]", [len(r) for r in rows] or [0])
    if lib.dh13_snapshot_response_rows(out, b"".join(rows), lens, len(rows)) != 0:
        _respond_error(out, "snapshot fetch failed: out of memory")
        return 0
    with handle._lock:
        handle.rows_served += len(rows)
    return 0


@ffi.def_extern(name="dh13_py_snapshot_drop")  # type: ignore[untyped-decorator]
@c_callback(lambda exc: None)
def _snapshot_drop(state: CData) -> None:
    key = _abi013.ctx_key(state)
    found = handles.get(key)
    if type(found) is not _Fetcher:
        return  # dropped already
    handle = found.handle
    with handle._lock:
        if handle.drop_calls:
            return  # a concurrent drop of the same state won
        handle.drop_calls += 1
    handles.remove(key)
    handle.close()
    # The plugin is inside drop_fn, reached through the block: free it later.
    DropThread.get().submit(lambda: _unpin(key))
