"""Calling a host service provider from a plugin thread.

A provider method (state store, identity) is either a plain function or a
coroutine function.  Plain functions are called directly on the plugin thread
that made the C call: it holds the GIL, nothing else is needed, and this is
the fast path.  Coroutine functions run on the host's event loop: the bridge
captures the loop's token when the vtable is built (``build`` runs on the
loop thread, inside ``initialize``) and the plugin thread waits for the result
with :func:`anyio.from_thread.run`.  That cannot deadlock, because plugin
calls that block run in worker threads, never on the loop thread itself; a
call that does arrive on the loop thread is refused with an error instead of
waiting for itself.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from ..errors import DrasiHostError

__all__ = ["BridgeError", "LoopPortal", "failure_message", "log"]

#: Logger of the host service bridges.
log = logging.getLogger("drasi_host.bridges")


#: anyio's "the event loop has finished" error (present since anyio 4.11).
_RUN_FINISHED: tuple[type[BaseException], ...] = tuple(
    cls for cls in (getattr(anyio, "RunFinishedError", None),) if isinstance(cls, type)
)


class BridgeError(Exception):
    """A failure the bridge itself detects; its message goes to the plugin as is."""


def failure_message(exc: BaseException) -> str:
    """The message a plugin receives for ``exc``.

    The bridge's own and the package's errors are already worded for the
    reader; anything a provider raises is prefixed with its type name.
    """
    if isinstance(exc, (BridgeError, DrasiHostError)):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_coroutine_function(fn: object) -> bool:
    """True for ``async def`` functions and methods, also behind ``functools.partial``
    or as an instance's ``__call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - a callable object's method
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def required_method(obj: object, name: str, protocol: str, params: str = "()") -> Any:
    """``obj``'s method ``name``; TypeError naming ``protocol`` (with its
    article: ``"an IdentityProvider"``) and the method as ``name`` +
    ``params`` when it has none."""
    method = getattr(obj, name, None)
    if not callable(method):
        raise TypeError(f"{type(obj).__name__} is not {protocol}: it has no method {name}{params}")
    return method


class LoopPortal:
    """The way back to the event loop that was running when a bridge was built."""

    __slots__ = ("_thread", "_token", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        try:
            self._token: Any = anyio.lowlevel.current_token()
            self._thread: int | None = threading.get_ident()
        except RuntimeError:  # anyio.NoEventLoopError: built outside an event loop
            self._token = None
            self._thread = None

    @property
    def has_loop(self) -> bool:
        return self._token is not None

    def adapt(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        """``fn`` itself when it is plain, otherwise a plain function that runs
        the coroutine function on the event loop and waits for its result."""
        if not is_coroutine_function(fn):
            return fn
        if self._token is None:
            raise RuntimeError(
                f"{self.what}: {name}() is a coroutine function, so the bridge must be "
                "built inside a running event loop (anyio, asyncio or trio)"
            )
        return functools.partial(self._run, fn, name)

    def _run(self, fn: Callable[..., Any], name: str, *args: Any) -> Any:
        if threading.get_ident() == self._thread:
            raise BridgeError(
                f"{self.what}: {name}() is a coroutine function and was called on the "
                "event loop thread itself; it can only be called from a plugin thread"
            )
        try:
            return anyio.from_thread.run(fn, *args, token=self._token)
        except _RUN_FINISHED:
            raise BridgeError(
                f"{self.what}: {name}() needs the event loop, which has finished"
            ) from None
