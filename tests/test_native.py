"""The lifetime machinery itself (``drasi_host._native``), with Python
callables standing in for plugin functions."""

from __future__ import annotations

import gc
import threading
import time

import anyio
import pytest
from lifetime_helpers import eventually

from drasi_host import ClosedError
from drasi_host._native import (
    DropThread,
    Lease,
    Lifetime,
    NativeResource,
    run_blocking,
    run_on_drop_thread,
)


class Thing(NativeResource):
    """A resource whose "plugin object" is a list of what happened to it."""

    def __init__(self, log: list[str], name: str = "thing") -> None:
        super().__init__(name)
        self._life.own(lambda: log.append(f"drop {name} on {threading.get_ident()}"))


def test_steps_run_newest_first_once_on_the_drop_thread() -> None:
    life = Lifetime("x")
    seen: list[tuple[str, int]] = []
    life.own(lambda: seen.append(("first", threading.get_ident())))
    life.own(lambda: seen.append(("second", threading.get_ident())))
    life.close()
    life.close()
    assert life.wait_released(5)
    drop = DropThread.get().ident
    assert seen == [("second", drop), ("first", drop)]
    life.own(lambda: seen.append(("late", threading.get_ident())))  # after release: run at once
    assert eventually(lambda: len(seen) == 3)
    with pytest.raises(ClosedError, match="x is closed"):
        life.enter()


def test_release_waits_for_calls_in_flight() -> None:
    life = Lifetime("x")
    released = threading.Event()
    life.own(released.set)
    life.enter()
    life.close()
    assert not released.wait(0.05)
    life.leave()
    assert released.wait(5)


def test_children_are_closed_first_and_released_before_the_parent() -> None:
    parent, child = Lifetime("parent"), Lifetime("child")
    order: list[str] = []
    parent.own(lambda: order.append("parent"))
    child.own(lambda: order.append("child"))
    parent.adopt(child)
    parent.close()
    assert child.closing
    assert parent.wait_released(5)
    assert order == ["child", "parent"]
    with pytest.raises(ClosedError):
        parent.adopt(Lifetime("late"))


def test_a_lease_defers_the_release_but_not_the_close() -> None:
    life = Lifetime("x")
    released = threading.Event()
    life.own(released.set)
    lease = Lease(life)
    life.close()
    with lease.entered():  # the holder may go on calling
        pass
    assert not released.wait(0.05)
    lease.release()
    lease.release()
    assert released.wait(5)
    with pytest.raises(ClosedError), lease.entered():
        pass


def test_at_close_runs_at_once_before_calls_return() -> None:
    life = Lifetime("x")
    woken: list[bool] = []
    life.at_close(lambda: woken.append(True))
    life.enter()
    life.close()
    assert woken == [True]
    life.leave()
    assert life.wait_released(5)


def test_drop_thread_runs_nested_releases_inline() -> None:
    outer_done = threading.Event()

    def outer() -> None:
        inner = Lifetime("inner")
        inner.own(lambda: None)
        inner.close()  # submitted from the drop thread: runs here, at once
        assert inner.released
        outer_done.set()

    run_on_drop_thread(outer)
    assert outer_done.is_set()


@pytest.mark.anyio
async def test_aclose_waits_and_is_idempotent() -> None:
    log: list[str] = []
    async with Thing(log) as thing:
        assert not thing.closed
    assert thing.closed and log == [f"drop thing on {DropThread.get().ident}"]
    await thing.aclose()
    assert len(log) == 1
    with pytest.raises(ClosedError):
        await thing._call(time.sleep, 0)


@pytest.mark.anyio
async def test_a_cancelled_call_fails_the_object_and_releases_it_after_the_call() -> None:
    log: list[str] = []
    thing = Thing(log)
    go = threading.Event()
    started = time.monotonic()
    with anyio.move_on_after(0.1):
        await thing._call(go.wait)
    assert time.monotonic() - started < 2
    assert thing.closed and log == []
    with pytest.raises(ClosedError, match="abandoned"):
        await thing._call(time.sleep, 0)
    go.set()
    assert eventually(lambda: len(log) == 1)


@pytest.mark.anyio
async def test_blocking_calls_run_off_the_loop_and_report_errors() -> None:
    here = threading.get_ident()
    assert await run_blocking(threading.get_ident) != here

    def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await run_blocking(fail)


def test_collected_resource_warns_and_is_released() -> None:
    log: list[str] = []
    with pytest.warns(ResourceWarning, match="lost was garbage-collected while open"):
        Thing(log, "lost")
        gc.collect()
    assert eventually(lambda: log == [f"drop lost on {DropThread.get().ident}"])
