"""How calls from plugins reach Python.

A plugin calls back into the host from any of its threads, at any time,
sometimes after the host has finished with the component concerned.  Every
such call follows the same path:

1. The plugin calls a C function of ``drasi_host._ffi`` (``host.c``; for the
   host services of 0.13 plugins, of ``drasi_host._ffi013``, ``host013.c``).  Event
   pushes and result pulls are answered entirely in C, through channels, and
   never enter Python.  Everything else (logs, lifecycle events, the state
   store, identity, Python bootstrap providers) goes through a *shim* that
   counts the call as in flight, then checks the host is still alive and
   otherwise returns a safe failure value.  At interpreter exit the host
   stops admitting calls and waits (bounded) for those in flight, so no
   plugin thread is ever inside a finalising interpreter.
2. The shim calls an ``extern "Python"`` function.  Each is defined with
   :func:`c_callback`, the one wrapper through which every C callback goes: it
   catches any exception, logs it on the ``drasi_host.callbacks`` logger,
   counts it in :data:`callback_errors`, and returns the callback's documented
   failure value.  No Python exception ever crosses into C.
3. The ``ctx``/``state`` pointer the plugin passes back is not an object
   address but an integer key into :data:`handles`.  The callback looks it up;
   a key that has been released is unknown, and the call is dropped (and
   counted in ``handles.late_calls``) instead of touching freed memory.

The functions defined here are the log and lifecycle callbacks; the state
store, identity and bootstrap bridges define theirs the same way.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from . import _abi, _abi013
from ._abi import ffi

__all__ = ["HandleTable", "c_callback", "callback_errors", "handles"]

_log = logging.getLogger("drasi_host.callbacks")

F = TypeVar("F", bound=Callable[..., Any])


class HandleTable:
    """Integer keys for objects that C holds on to.  Keys are never reused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[int, object] = {}
        self._next = itertools.count(0x1000)
        self.late_calls = 0

    def add(self, obj: object) -> int:
        with self._lock:
            key = next(self._next)
            self._objects[key] = obj
            return key

    def get(self, key: int) -> Any:
        obj = self._objects.get(key)
        if obj is None:
            with self._lock:
                self.late_calls += 1
        return obj

    def remove(self, key: int) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: int) -> bool:
        return key in self._objects


handles = HandleTable()

#: How long interpreter exit waits for plugin calls already inside Python.
SHUTDOWN_WAIT_MS = 2000


def _shutdown() -> None:
    """From interpreter exit on, the C shims answer plugin calls with their
    failure values instead of entering Python; calls already inside get up to
    :data:`SHUTDOWN_WAIT_MS` to return (the C call releases the GIL, so they
    can) before the runtime goes away."""
    left = _abi.lib.dh_host_shutdown(SHUTDOWN_WAIT_MS)
    left += _abi013.lib.dh13_host_shutdown(SHUTDOWN_WAIT_MS)
    if left > 0:
        _log.warning(
            "interpreter exit: %d plugin callback(s) still running after %d ms",
            left,
            SHUTDOWN_WAIT_MS,
        )


atexit.register(_shutdown)


class _ErrorCount:
    def __init__(self) -> None:
        self.count = 0
        self.last: BaseException | None = None


callback_errors = _ErrorCount()


def c_callback(on_error: Callable[[BaseException], Any]) -> Callable[[F], F]:
    """Wrap a function called from C so that no exception escapes it.

    ``on_error(exc)`` builds the value returned to C when the body raises
    (for example an ``FfiResult`` carrying the message).
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any) -> Any:
            try:
                return fn(*args)
            except BaseException as exc:
                callback_errors.count += 1
                callback_errors.last = exc
                try:
                    _log.error("error in plugin callback %s: %r", fn.__name__, exc, exc_info=exc)
                    return on_error(exc)
                except BaseException:
                    return None

        return wrapper  # type: ignore[return-value]

    return decorate


def _none(_exc: BaseException) -> None:
    return None


@ffi.def_extern(name="dh_py_log")  # type: ignore[untyped-decorator]
@c_callback(_none)
def _on_log(ctx: Any, entry: Any) -> None:
    target = handles.get(_abi.ctx_key(ctx))
    if target is not None:
        target.on_ffi_log(entry)


@ffi.def_extern(name="dh_py_lifecycle")  # type: ignore[untyped-decorator]
@c_callback(_none)
def _on_lifecycle(ctx: Any, event: Any) -> None:
    target = handles.get(_abi.ctx_key(ctx))
    if target is not None:
        target.on_ffi_lifecycle(event)
