"""Waking the event loop from any thread without the GIL-holding side ever
blocking.

A :class:`Notifier` is a non-blocking socket pair: C code (or a Python
thread) writes one byte to the write end, and a coroutine waits for the read
end with :func:`anyio.wait_readable`, which works the same under asyncio and
trio.  :class:`ThreadSafeQueue` puts a bounded deque behind one, for streams
fed from plugin threads (log and lifecycle subscriptions).
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class Notifier:
    """One wake-up channel: ``notify()`` from anywhere, ``await wait()`` on the loop."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._closed = False

    @property
    def write_fd(self) -> int:
        """The descriptor C code writes to (valid until :meth:`close`)."""
        return self._writer.fileno()

    def notify(self) -> None:
        if self._closed:
            return
        # BlockingIOError: unread bytes already pending, a wake-up is due anyway.
        with contextlib.suppress(BlockingIOError, OSError):
            self._writer.send(b"\x01")

    def clear(self) -> None:
        """Discard pending wake-up bytes."""
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    async def wait(self) -> None:
        """Wait until notified (returns at once if a wake-up is pending)."""
        await anyio.wait_readable(self._reader)
        self.clear()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()
            self._writer.close()


class ThreadSafeQueue(Generic[T]):
    """A bounded queue filled from any thread and read by one coroutine.

    ``put`` never blocks: when full the oldest item is dropped and counted in
    ``dropped``.  ``close()`` ends the stream after what is queued.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self._notifier = Notifier()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._items) >= self._maxlen:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
        self._notifier.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._notifier.notify()

    async def get(self) -> T:
        """The next item; raises :class:`anyio.EndOfStream` once closed and empty."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    self._notifier.close()
                    raise anyio.EndOfStream
            await self._notifier.wait()

    def __aiter__(self) -> ThreadSafeQueue[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
