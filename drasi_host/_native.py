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

Objects nest: :meth:`Lifetime.adopt` makes a child (a factory of a library,
a receiver of a source) count as a call in flight of its parent until the
child is released, and closing the parent closes the child first.  A
:class:`Lease` keeps an object from being released without making closing
wait for it (a host-built vtable a plugin keeps holds the provider behind
it); ``aclose()`` then returns once no call is in flight, and the release
follows when the lease ends.

Blocking plugin calls run on daemon worker threads of this module, so a call
that never returns cannot keep the interpreter from exiting.  A caller that is
cancelled gets control back at once; its call goes on in its thread, the
object is marked failed (new calls raise ``ClosedError``) and is released when
the call has returned.

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

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import queue
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from ._abi import NULL
from .errors import ClosedError

try:  # trio is optional; without it only asyncio event loops exist here
    import trio
except ImportError:  # pragma: no cover - trio is installed with the test extra
    trio = None  # type: ignore[assignment]

__all__ = [
    "DropThread",
    "Lease",
    "Lifetime",
    "NativeResource",
    "drop_vtable",
    "on_drop_thread",
    "run_blocking",
    "run_on_drop_thread",
    "wait_released",
]

_log = logging.getLogger("drasi_host")

T = TypeVar("T")
R = TypeVar("R", bound="NativeResource")

#: How long interpreter exit waits for releases already queued.
EXIT_DRAIN_SECONDS = 5.0
#: How long an idle call thread waits for work before it ends.
CALL_THREAD_IDLE_SECONDS = 10.0


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
        """The drop thread's identifier (``threading.get_ident()`` on it)."""
        return self._thread.ident

    def on_thread(self) -> bool:
        """True when called on the drop thread itself."""
        return threading.get_ident() == self._thread.ident

    def submit(self, fn: Callable[[], None]) -> concurrent.futures.Future[None]:
        """Queue ``fn``; on the drop thread itself it runs at once (a release
        step that closes another object must not wait for its own thread)."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if self.on_thread():
            _run_into(fn, future)
            return future
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
            if future.set_running_or_notify_cancel():
                _run_into(fn, future)

    def _drain_at_exit(self) -> None:
        self._stopping = True
        done = threading.Event()
        self._queue.put((done.set, concurrent.futures.Future()))
        done.wait(EXIT_DRAIN_SECONDS)


def _run_into(fn: Callable[[], None], future: concurrent.futures.Future[None]) -> None:
    try:
        fn()
    except BaseException as exc:  # reported through the future, never lost
        future.set_exception(exc)
    else:
        future.set_result(None)


def run_on_drop_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the drop thread and wait for it (for synchronous error
    paths that must release what they created before raising)."""
    DropThread.get().submit(fn).result()


async def on_drop_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the drop thread and wait for it on the event loop."""
    future = DropThread.get().submit(fn)
    if not future.done():
        waker = _Waker()
        future.add_done_callback(lambda _f: waker.wake())
        await waker.event.wait()
    future.result()


# ---- blocking calls on daemon threads ------------------------------------------


class _CallThreads:
    """Daemon threads for plugin calls that may block.  Idle threads are
    reused and end after :data:`CALL_THREAD_IDLE_SECONDS`; being daemons, a
    call that never returns does not hold up interpreter exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(
                target=self._work, args=(inbox,), name="drasi-host-call", daemon=True
            ).start()
        inbox.put(job)

    def _work(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            try:
                job = inbox.get(timeout=CALL_THREAD_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                continue  # taken just now: its job is on the way
            job()
            del job
            with self._lock:
                self._idle.append(inbox)


_call_threads = _CallThreads()


class _Waker:
    """An :class:`anyio.Event` of the running event loop that any thread can set."""

    __slots__ = ("_soon", "event")

    def __init__(self) -> None:
        self.event = anyio.Event()
        try:
            self._soon: Callable[[Callable[[], object]], object] = (
                asyncio.get_running_loop().call_soon_threadsafe
            )
        except RuntimeError:
            if trio is None:  # pragma: no cover
                raise
            self._soon = trio.lowlevel.current_trio_token().run_sync_soon

    def wake(self) -> None:
        # RuntimeError: the event loop has finished, nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self._soon(self.event.set)


async def run_blocking(
    fn: Callable[..., T], *args: Any, on_abandon: Callable[[], None] | None = None
) -> T:
    """Run ``fn(*args)`` on a daemon call thread and wait for it.

    Cancelling the caller returns control at once; the call goes on in its
    thread and ``on_abandon`` (if given) is called on the event loop thread.
    """
    waker = _Waker()
    outcome: list[tuple[bool, Any]] = []

    def job() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:
            outcome.append((False, exc))
        finally:
            waker.wake()

    _call_threads.submit(job)
    try:
        await waker.event.wait()
    except BaseException:
        if not outcome and on_abandon is not None:
            on_abandon()
        raise
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


# ---- lifetimes ---------------------------------------------------------------------


class Lifetime:
    """The state of one native object, shared by its proxy and its finalizer
    (so the finalizer never refers to the proxy itself).

    Two counts keep an object from being released: calls in flight (and
    children, see :meth:`adopt`), which closing waits for, and holds (see
    :class:`Lease`), which it does not wait for: the object is released when
    the last hold ends.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._calls = 0
        self._holds = 0
        self._closing = False
        self._failure: str | None = None
        self._steps: list[Callable[[], None]] = []
        self._at_close: list[Callable[[], None]] = []
        self._children: list[Lifetime] = []
        self._on_settled: list[Callable[[], None]] = []
        self._on_released: list[Callable[[], None]] = []
        self._settled = False
        self._submitted = False
        self._done = threading.Event()

    # ---- ownership ------------------------------------------------------------

    def own(self, step: Callable[[], None]) -> None:
        """Register a release step; steps run newest first, once, after every
        call in flight has returned.  Owning on a released object runs the
        step at once (on the drop thread), so nothing is ever leaked."""
        with self._lock:
            if not self._submitted:
                self._steps.append(step)
                return
        DropThread.get().submit(step)

    def at_close(self, fn: Callable[[], None]) -> None:
        """Register ``fn`` to run as soon as closing starts, on the closing
        thread, before the calls in flight have returned (to wake them: close
        a channel a plugin thread waits on).  It must not call the plugin."""
        with self._lock:
            if not self._closing:
                self._at_close.append(fn)
                return
        fn()

    def adopt(self, child: Lifetime) -> None:
        """Make ``child`` part of this object: closing this object closes the
        child, and this object's release waits until the child is released.
        ClosedError when this object is closing."""
        self.enter()
        with self._lock:
            self._children.append(child)

        def released() -> None:
            with self._lock:
                if child in self._children:
                    self._children.remove(child)
            self.leave()

        child.on_released(released)

    def on_released(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` (on the drop thread) once the release steps have run;
        at once when they already have."""
        with self._lock:
            if not self._done.is_set():
                self._on_released.append(fn)
                return
        fn()

    def on_settled(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the object is closing and no call is in flight
        (holds may remain); at once when that is so already."""
        with self._lock:
            if not self._settled:
                self._on_settled.append(fn)
                return
        fn()

    # ---- calls ------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def failure(self) -> str | None:
        """Why the object was marked failed (a call abandoned), or None."""
        return self._failure

    @property
    def calls_in_flight(self) -> int:
        return self._calls

    @property
    def holds(self) -> int:
        return self._holds

    def closed_error(self) -> ClosedError:
        if self._failure is not None:
            return ClosedError(f"{self.label} is closed ({self._failure})")
        return ClosedError(f"{self.label} is closed")

    def enter(self) -> None:
        """Count a call into the plugin; ClosedError once closing."""
        with self._lock:
            if self._closing:
                raise self.closed_error()
            self._calls += 1

    def leave(self) -> None:
        """The call counted by :meth:`enter` has returned."""
        with self._lock:
            self._calls -= 1
            settled, release = self._advance()
        self._fire(settled, release)

    @contextmanager
    def entered(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    def _advance(self) -> tuple[list[Callable[[], None]], bool]:
        """Under the lock: what became true (settled callbacks, release)."""
        settled: list[Callable[[], None]] = []
        release = False
        if self._closing and self._calls == 0:
            if not self._settled:
                self._settled = True
                settled, self._on_settled = self._on_settled, []
            if self._holds == 0 and not self._submitted:
                self._submitted = release = True
        return settled, release

    def _fire(
        self, settled: list[Callable[[], None]], release: bool, *, here: bool = False
    ) -> None:
        for fn in settled:
            fn()
        if release:
            if here:
                self._run_steps()
            else:
                DropThread.get().submit(self._run_steps)

    # ---- release ----------------------------------------------------------------

    def close(self, *, here: bool = False) -> None:
        """Refuse new calls, close the children, and release once the calls
        in flight, the children and the holds are done.  ``here=True`` runs
        the release on this thread when nothing is in flight (only for
        objects whose steps never call a plugin)."""
        with self._lock:
            first = not self._closing
            self._closing = True
            hooks, self._at_close = self._at_close, []
            children = list(self._children) if first else []
        for hook in hooks:
            try:
                hook()
            except Exception as exc:
                _log.error("%s: closing step failed: %r", self.label, exc)
        for child in children:
            child.close()
        with self._lock:
            settled, release = self._advance()
        self._fire(settled, release, here=here)

    def fail(self, reason: str) -> None:
        """Mark the object failed (``reason`` goes into later ClosedErrors)
        and close it: it is released once the calls in flight return."""
        with self._lock:
            if self._failure is None:
                self._failure = reason
        self.close()

    def wait_released(self, timeout: float | None = None) -> bool:
        """Block until the release steps have run (True) or ``timeout`` passed."""
        return self._done.wait(timeout)

    @property
    def released(self) -> bool:
        return self._done.is_set()

    def _run_steps(self) -> None:
        with self._lock:
            steps, self._steps = self._steps, []
        try:
            for step in reversed(steps):
                try:
                    step()
                except BaseException as exc:  # every step runs; errors are logged
                    _log.error("%s: release step failed: %r", self.label, exc)
        finally:
            with self._lock:
                self._done.set()
                callbacks, self._on_released = self._on_released, []
            for fn in callbacks:
                try:
                    fn()
                except BaseException as exc:
                    _log.error("%s: after-release step failed: %r", self.label, exc)

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


class Lease:
    """A hold on a :class:`Lifetime` (a host-built vtable a plugin keeps):
    the object is not released until :meth:`release` (idempotent), but
    closing does not wait for it.  Calls made :meth:`through <entered>` the
    lease go on while the object is closing.  ClosedError when the object is
    closing already."""

    def __init__(self, life: Lifetime) -> None:
        with life._lock:
            if life._closing:
                raise life.closed_error()
            life._holds += 1
        self._life = life
        self._lock = threading.Lock()
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        life = self._life
        with life._lock:
            life._holds -= 1
            settled, release = life._advance()
        life._fire(settled, release)

    @contextmanager
    def entered(self) -> Iterator[None]:
        """Count a call on the leased object; allowed while it is closing,
        refused (ClosedError) once the lease was released."""
        life = self._life
        with self._lock:
            if not self._held:
                raise life.closed_error()
            with life._lock:
                life._calls += 1
        try:
            yield
        finally:
            life.leave()


class NativeResource(anyio.abc.AsyncResource):
    """Base of every proxy that owns a plugin object (see the module doc).

    ``finalize=False`` leaves out the finalizer, for objects a parent owns (the
    parent's release covers them).
    """

    def __init__(self, label: str, *, finalize: bool = True) -> None:
        self._life = Lifetime(label)
        self._finalizer: weakref.finalize[Any, Any] | None = None
        if finalize:
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
            raise self._life.closed_error()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a plugin function that may block on a daemon call thread,
        counted as a call in flight (``aclose`` waits for it).

        A cancelled caller gets control back at once; the call goes on, the
        object is marked failed, and it is released once the call returns.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        life = self._life
        life.enter()

        def run() -> T:
            try:
                return fn(*args)
            finally:
                life.leave()

        name = getattr(fn, "__name__", "a plugin call")
        return await run_blocking(
            run, on_abandon=lambda: life.fail(f"{name} was abandoned by a cancelled caller")
        )

    def close_nowait(self) -> None:
        """Start closing without waiting (for synchronous callers)."""
        if self._finalizer is not None:
            self._finalizer.detach()
        self._life.close()

    def close_and_wait(self, timeout: float | None = None) -> bool:
        """Synchronous close: start closing and block until released (True)
        or ``timeout`` passed.  Blocks the calling thread: not for event loops."""
        self.close_nowait()
        return self._life.wait_released(timeout)

    async def aclose(self) -> None:
        """Refuse new calls, wait for calls in flight, release the plugin
        object on the drop thread and wait for that; idempotent.  Cancelling
        the wait leaves the release running."""
        self.close_nowait()
        await wait_released(self._life)

    async def __aenter__(self: R) -> R:
        return self

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self.label} {state}>"


async def wait_released(life: Lifetime) -> None:
    """Wait (on the event loop, without a thread) until ``life`` is released,
    or, while holds remain (:class:`Lease`), until no call is in flight."""
    if life.released:
        return
    waker = _Waker()
    life.on_settled(waker.wake)
    await waker.event.wait()
    if life.holds == 0 and not life.released:
        waker = _Waker()
        life.on_released(waker.wake)
        await waker.event.wait()
