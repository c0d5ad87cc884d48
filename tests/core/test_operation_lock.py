"""OperationLock: re-entrant per task, first come first served, cancellation-safe."""

from __future__ import annotations

import asyncio

from data_bridge_core.operation_lock import OperationLock


async def test_the_task_holding_the_lock_enters_it_again_without_waiting() -> None:
    lock = OperationLock()
    async with lock:
        async with lock:
            assert lock.held
        assert lock.held
    assert not lock.held
    assert not lock.busy


async def test_other_tasks_wait_their_turn_in_the_order_they_came() -> None:
    lock = OperationLock()
    order: list[int] = []

    async def operation(n: int) -> None:
        async with lock:
            order.append(n)
            await asyncio.sleep(0)
            order.append(n)

    async with asyncio.timeout(10):
        await asyncio.gather(*(operation(n) for n in range(4)))
    assert order == [0, 0, 1, 1, 2, 2, 3, 3]


async def test_a_waiter_cancelled_in_the_queue_leaves_it_and_the_next_one_gets_the_lock() -> None:
    lock = OperationLock()
    entered: list[str] = []

    async def operation(name: str) -> None:
        async with lock:
            entered.append(name)

    async with lock:
        first = asyncio.create_task(operation("cancelled"))
        second = asyncio.create_task(operation("next"))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await second
    assert first.cancelled()
    assert entered == ["next"]
    assert not lock.busy


async def test_a_waiter_cancelled_just_as_it_is_handed_the_lock_passes_it_on() -> None:
    lock = OperationLock()
    entered: list[str] = []

    async def operation(name: str) -> None:
        async with lock:
            entered.append(name)

    async with lock:
        first = asyncio.create_task(operation("cancelled"))
        second = asyncio.create_task(operation("next"))
        await asyncio.sleep(0)
    first.cancel()  # the lock was handed to it; it has not run yet
    async with asyncio.timeout(10):
        await second
    assert first.cancelled()
    assert entered == ["next"]
    assert not lock.busy


async def test_acquire_to_finish_takes_the_lock_through_a_cancellation_and_reports_it() -> None:
    lock = OperationLock()
    outcome: list[bool] = []

    async def closing() -> None:
        outcome.append(await lock.acquire_to_finish())
        lock.release()

    async with lock:
        task = asyncio.create_task(closing())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await task
    assert outcome == [True]
    assert not lock.busy
