"""Cancellation checkpoints for calls made once per result.

``anyio.lowlevel.checkpoint_if_cancelled()`` finds the backend through
sniffio and builds a coroutine on every call, which is a large part of the
cost of queueing one result.  :func:`cancel_pending` answers the same
question without either, so the caller awaits
:func:`checkpoint_if_cancelled` only when it has to::

    if cancel_pending():
        await checkpoint_if_cancelled()   # raises the cancellation

Under asyncio the caller is cancelled when one of anyio's cancel scopes
around it, up to the first shielded one, has been cancelled (the test
anyio's own check makes); under trio when the task's cancel status says so or
a KeyboardInterrupt is pending for the main task (trio's own check, which
also counts the call as a cancel point).  Both read internals of anyio and
trio; whenever they are not laid out as expected, :func:`cancel_pending`
answers True and the backend's own check decides.
"""

from __future__ import annotations

import asyncio
import sys
import types
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.lowlevel

__all__ = ["cancel_pending", "checkpoint_if_cancelled"]

_get_running_loop = asyncio._get_running_loop
_current_task: Callable[[Any], Any] = asyncio.current_task
if not isinstance(_current_task, types.BuiltinFunctionType):
    # Before Python 3.12 current_task(loop) is Python code reading this dict.
    _loop_tasks = getattr(asyncio.tasks, "_current_tasks", None)
    if isinstance(_loop_tasks, dict):
        _current_task = _loop_tasks.get
_ref = weakref.ref

_asyncio_checkpoint_if_cancelled: Callable[[], Awaitable[None]]
_asyncio_task_states: dict[Any, Any] | None
try:  # the check anyio.lowlevel.checkpoint_if_cancelled makes under asyncio
    from anyio._backends import _asyncio as _anyio_asyncio

    _asyncio_checkpoint_if_cancelled = _anyio_asyncio.AsyncIOBackend.checkpoint_if_cancelled
    # The dict behind anyio's WeakKeyDictionary of task states, keyed by
    # weak references to the tasks.
    _states: Any = _anyio_asyncio._task_states
    _data = getattr(_states, "data", None)
    _asyncio_task_states = _data if isinstance(_states, weakref.WeakKeyDictionary) else None
except (ImportError, AttributeError):  # pragma: no cover - another anyio layout
    _asyncio_checkpoint_if_cancelled = anyio.lowlevel.checkpoint_if_cancelled
    _asyncio_task_states = None


def checkpoint_if_cancelled() -> Awaitable[None]:
    """``anyio.lowlevel.checkpoint_if_cancelled()`` without finding the
    backend through sniffio: the running asyncio loop tells asyncio, no loop
    tells trio, and the backend's own check runs."""
    if _get_running_loop() is not None:
        return _asyncio_checkpoint_if_cancelled()
    trio = sys.modules.get("trio")
    if trio is None:  # pragma: no cover - neither asyncio nor trio
        return anyio.lowlevel.checkpoint_if_cancelled()
    return trio.lowlevel.checkpoint_if_cancelled()  # type: ignore[no-any-return]


def cancel_pending() -> bool:
    """Whether :func:`checkpoint_if_cancelled` must be awaited: False only
    when the calling task is certainly not cancelled (it then needs no
    checkpoint), True when it is or when that cannot be told cheaply."""
    loop = _get_running_loop()
    if loop is not None:
        states = _asyncio_task_states
        if states is None:  # pragma: no cover - another anyio layout
            return True
        task = _current_task(loop)
        if task is None:
            return False  # anyio's check does nothing outside a task
        state = states.get(_ref(task))
        if state is None:
            return False  # not a task anyio knows: no anyio cancel scope
        try:
            scope = state.cancel_scope
            while scope is not None:
                if scope._cancel_called:
                    return True
                if scope._shield:
                    return False
                scope = scope._parent_scope
        except AttributeError:  # pragma: no cover - another anyio layout
            return True
        return False
    context = _trio_run_context or _find_trio_run_context()
    if context is None:  # pragma: no cover - neither asyncio nor trio
        return True
    try:
        task = context.task  # what trio.lowlevel.current_task() reads
        if task._cancel_status.effectively_cancelled:
            return True
        runner = task._runner
        if runner.ki_pending and task is runner.main_task:
            return True
        task._cancel_points += 1  # what trio's own check counts
    except AttributeError:  # not in a trio task, or another trio layout
        return True
    return False


#: trio's thread-local run context, once trio is loaded.
_trio_run_context: Any = None


def _find_trio_run_context() -> Any:
    global _trio_run_context
    run = sys.modules.get("trio._core._run")
    _trio_run_context = getattr(run, "GLOBAL_RUN_CONTEXT", None)
    return _trio_run_context
