"""``cancel_pending`` agrees with the backends' own cancellation checks."""

from __future__ import annotations

import asyncio
import math
from contextlib import ExitStack

import anyio
import pytest

from drasi_host._checkpoint import cancel_pending, checkpoint_if_cancelled

pytestmark = pytest.mark.anyio


def _backend_says_cancelled() -> bool:
    """anyio's public answer: an effective deadline of -inf means a cancel
    scope around the caller (up to a shielded one) was cancelled."""
    return anyio.current_effective_deadline() == -math.inf


async def test_not_cancelled_needs_no_checkpoint() -> None:
    assert not cancel_pending()
    with anyio.CancelScope(), anyio.move_on_after(60):
        assert not cancel_pending()
        await checkpoint_if_cancelled()  # returns


@pytest.mark.parametrize(
    "layout",
    [
        # (cancelled?, shielded?) from the outermost scope inwards
        [(True, False)],
        [(True, False), (False, False)],
        [(True, False), (False, False), (False, False), (False, False)],
        [(True, False), (False, True)],
        [(True, False), (False, True), (False, False)],
        [(False, True), (True, False)],
        [(True, True)],
        [(False, False), (False, False)],
    ],
)
async def test_nested_scopes(layout: list[tuple[bool, bool]]) -> None:
    with ExitStack() as stack:
        scopes = []
        for cancelled, shield in layout:
            scope = stack.enter_context(anyio.CancelScope(shield=shield))
            if cancelled:
                scope.cancel()
            scopes.append(scope)
        expected = _backend_says_cancelled()
        assert cancel_pending() is expected
        if expected:
            await checkpoint_if_cancelled()
            pytest.fail("a cancelled caller passed the checkpoint")
    assert any(scope.cancelled_caught for scope in scopes) is expected


async def test_passed_deadline_and_child_tasks() -> None:
    with anyio.move_on_after(0) as late:
        assert cancel_pending()
        await checkpoint_if_cancelled()
    assert late.cancelled_caught

    seen: list[bool] = []

    async def child(scope: anyio.CancelScope) -> None:
        seen.append(cancel_pending())
        scope.cancel()
        seen.append(cancel_pending())
        await checkpoint_if_cancelled()
        seen.append(True)  # not reached

    async with anyio.create_task_group() as tg:
        tg.start_soon(child, tg.cancel_scope)
    assert seen == [False, True]


async def test_a_task_anyio_does_not_know(anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("plain asyncio tasks exist under asyncio only")

    async def plain() -> bool:
        return cancel_pending()

    with anyio.CancelScope() as scope:
        scope.cancel()
        # anyio's check ignores tasks it did not start; so does this one.
        assert await asyncio.get_running_loop().create_task(plain()) is False
    assert scope.cancel_called


async def test_trio_counts_a_cancel_point(anyio_backend: str) -> None:
    """Like trio's own check, a call that is not cancelled counts as a
    cancel point of the task (what ``trio.testing`` looks at)."""
    if anyio_backend != "trio":
        pytest.skip("trio's checkpoint accounting")
    import trio

    task = trio.lowlevel.current_task()
    before = task._cancel_points
    await trio.lowlevel.checkpoint_if_cancelled()
    by_trio = task._cancel_points - before
    before = task._cancel_points
    assert not cancel_pending()
    assert task._cancel_points - before == by_trio == 1


def test_outside_an_event_loop_the_backend_decides() -> None:
    """No loop and no trio run: True, so the caller awaits the backend's own
    check (which then says what is wrong)."""
    import trio  # loaded, not running

    assert trio.lowlevel.in_trio_run() is False
    assert cancel_pending() is True
