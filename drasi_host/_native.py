"""One owner for every plugin object.

Every proxy that owns something of a plugin (a factory, a source, a reaction,
a bootstrap provider, a receiver, a loaded library) derives from
:class:`NativeResource`.  It keeps a :class:`Lifetime`, which

- counts the calls that are inside the plugin right now (:meth:`Lifetime.enter`
  / :meth:`Lifetime.leave`, or :meth:`NativeResource._call` for a blocking call
  run in a worker thread);
- once closing, refuses new calls with :class:`~drasi_host.errors.ClosedError`;
- when the last call in flight has returned, runs the release steps that were
  registered with :meth:`Lifetime.own` (a plugin ``drop_fn``, a channel, a host
  service), newest first, exactly once, on the one drop thread of the host
  (never on the event loop thread, never on a thread that happens to collect
  garbage).

``aclose()`` (and ``async with``) starts the release and waits for it.  An
object collected while still open starts its release from a ``weakref``
finalizer and warns with :class:`ResourceWarning`.

The flow for one object::

    create:   proxy = SomeProxy(...); proxy._life.own(drop)   # owned from here on
    call:     await proxy._call(vt.start_fn, vt.state)         # counted, refused once closing
    close:    await proxy.aclose()      # closing -> wait for calls -> drop thread runs drop
    forgot:   del proxy; gc             # ResourceWarning, then the same release
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import queue
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc

from ._abi import NULL
from .errors import ClosedError

__all__ = ["DropThread", "Lifetime", "NativeResource", "drop_vtable"]

_log = logging.getLogger("drasi_host")

T = TypeVar("T")
R = TypeVar("R", bound="NativeResource")

#: How long interpreter exit waits for releases already queued.
EXIT_DRAIN_SECONDS = 5.0


def drop_vtable(vt: Any) -> None:
    """Call a plugin vtable's ``drop_fn(state)`` if it has one (the one place
    that does)."""
    if vt.drop_fn != NULL:
        vt.drop_fn(vt.state)


class DropThread:
    """The host's one thread for running release steps (plugin ``drop_fn``s).

    A daemon thread started on first use; :meth:`submit` queues a callable and
    returns a future.  At interpreter exit queued releases get a bounded time
    to finish, and later submissions run nowhere (their future fails).
    """

    _instance: DropThread | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[
            tuple[Callable[[], None], concurrent.futures.Future[None]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="drasi-host-drop", daemon=True)
        self._stopping = False
        self._thread.start()

    @classmethod
    def get(cls) -> DropThread:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
                atexit.register(cls._instance._drain_at_exit)
            return cls._instance

    @property
    def ident(self) -> int | None:
        """The drop thread's identifier (for tests and diagnostics)."""
        return self._thread.ident

    def submit(self, fn: Callable[[], None]) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self._stopping:
            future.set_exception(RuntimeError("the interpreter is exiting"))
            return future
        self._queue.put((fn, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                fn()
            except BaseException as exc:  # reported through the future, never lost
                future.set_exception(exc)
            else:
                future.set_result(None)

    def _drain_at_exit(self) -> None:
        self._stopping = True
        done = threading.Event()
        self._queue.put((done.set, concurrent.futures.Future()))
        done.wait(EXIT_DRAIN_SECONDS)


class Lifetime:
    """The state of one native object, shared by its proxy and its finalizer
    (so the finalizer never refers to the proxy itself)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._calls = 0
        self._closing = False
        self._steps: list[Callable[[], None]] = []
        self._released: concurrent.futures.Future[None] | None = None

    # ---- ownership ------------------------------------------------------------

    def own(self, step: Callable[[], None]) -> None:
        """Register a release step; steps run newest first, once, after every
        call in flight has returned.  Owning on a closed object runs the step
        at once (on the drop thread), so nothing is ever leaked."""
        with self._lock:
            if not self._closing:
                self._steps.append(step)
                return
        DropThread.get().submit(step)

    # ---- calls ------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def calls_in_flight(self) -> int:
        return self._calls

    def enter(self) -> None:
        """Count a call into the plugin; ClosedError once closing."""
        with self._lock:
            if self._closing:
                raise ClosedError(f"{self.label} is closed")
            self._calls += 1

    def leave(self) -> None:
        """The call counted by :meth:`enter` has returned."""
        with self._lock:
            self._calls -= 1
            ready = self._closing and self._calls == 0 and self._released is None
            if ready:
                self._released = DropThread.get().submit(self._run_steps)

    @contextmanager
    def entered(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    # ---- release ----------------------------------------------------------------

    def close(self) -> concurrent.futures.Future[None] | None:
        """Refuse new calls; release once the calls in flight have returned.
        Returns the release's future (None while calls are still in flight:
        :meth:`wait_released` waits for it either way)."""
        with self._lock:
            self._closing = True
            if self._calls == 0 and self._released is None:
                self._released = DropThread.get().submit(self._run_steps)
            return self._released

    def wait_released(self, timeout: float | None = None) -> bool:
        """Block until the release steps have run (True) or ``timeout`` passed."""
        deadline = None if timeout is None else _now() + timeout
        while True:
            with self._lock:
                future = self._released
            if future is not None:
                try:
                    future.result(None if deadline is None else max(0.0, deadline - _now()))
                except concurrent.futures.TimeoutError:
                    return False
                except Exception:  # already logged by _run_steps
                    pass
                return True
            if deadline is not None and _now() >= deadline:
                return False
            threading.Event().wait(0.005)

    @property
    def released(self) -> bool:
        future = self._released
        return future is not None and future.done()

    def _run_steps(self) -> None:
        with self._lock:
            steps, self._steps = self._steps, []
        first: BaseException | None = None
        for step in reversed(steps):
            try:
                step()
            except BaseException as exc:  # every step runs; the first error is kept
                _log.error("%s: release step failed: %r", self.label, exc)
                first = first or exc
        if first is not None:
            raise first

    def collected(self) -> None:
        """Finalizer of an open proxy: warn, then release on the drop thread."""
        if self._closing:
            return
        warnings.warn(
            f"{self.label} was garbage-collected while open; call aclose() or use "
            "'async with' (released now)",
            ResourceWarning,
            stacklevel=2,
        )
        self.close()


def _now() -> float:
    return time.monotonic()


class NativeResource(anyio.abc.AsyncResource):
    """Base of every proxy that owns a plugin object (see the module doc)."""

    def __init__(self, label: str) -> None:
        self._life = Lifetime(label)
        self._finalizer = weakref.finalize(self, self._life.collected)
        self._finalizer.atexit = False

    @property
    def label(self) -> str:
        return self._life.label

    @label.setter
    def label(self, value: str) -> None:
        self._life.label = value

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` (or the finalizer) has started closing."""
        return self._life.closing

    def _check_open(self) -> None:
        if self._life.closing:
            raise ClosedError(f"{self.label} is closed")

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plugin function that may block, in a worker thread, counted
        as a call in flight (``aclose`` waits for it)."""
        life = self._life
        life.enter()

        def run() -> T:
            try:
                return fn(*args)
            finally:
                life.leave()

        # A cancelled caller gets control back at once; the call goes on in its
        # thread and still counts, so the release waits for it.
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)

    def close_nowait(self) -> None:
        """Start closing without waiting (for synchronous callers)."""
        self._finalizer.detach()
        self._life.close()

    async def aclose(self) -> None:
        """Refuse new calls, wait for calls in flight, release the plugin
        object on the drop thread and wait for that; idempotent."""
        self.close_nowait()
        life = self._life
        if life.released:
            return
        await anyio.to_thread.run_sync(life.wait_released, abandon_on_cancel=True)

    async def __aenter__(self: R) -> R:
        return self

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self.label} {state}>"
