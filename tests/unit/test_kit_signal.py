"""``Signal``: a broadcast wake-up that a waiter cannot miss between its look and its wait."""

from __future__ import annotations

import asyncio

from conveyor.abc.kit import Signal

WAIT = 10.0  # the backstop: nothing below should take anywhere near this long


async def test_a_fire_wakes_every_waiter_at_the_time() -> None:
    # Given three tasks waiting on one signal
    signal = Signal()
    waiters = [asyncio.create_task(signal.wait()) for _ in range(3)]
    await asyncio.sleep(0)  # let them start waiting

    # When it fires
    signal.fire()

    # Then all of them return
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*waiters)


async def test_a_waiter_that_starts_after_a_fire_waits_for_the_next_one() -> None:
    # Given a fire that woke an earlier waiter
    signal = Signal()
    early = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)
    signal.fire()
    late = asyncio.create_task(signal.wait())
    async with asyncio.timeout(WAIT):
        await early

    # Then the waiter that started after it is still waiting once the early one is done
    assert not late.done()
    # And the next fire wakes it
    signal.fire()
    async with asyncio.timeout(WAIT):
        await late


async def test_a_fire_between_the_look_and_the_wait_returns_at_once() -> None:
    # Given a waiter that read the generation before looking at its source
    signal = Signal()
    seen = signal.generation

    # When a fire happens before it starts waiting
    signal.fire()

    # Then its wait since that generation returns without another fire
    async with asyncio.timeout(WAIT):
        await signal.wait(None, since=seen)
    assert signal.generation == seen + 1


async def test_a_wait_ends_at_its_timeout_without_an_error() -> None:
    signal = Signal()
    async with asyncio.timeout(WAIT):
        await signal.wait(0.001)  # returns (and raises nothing) with no fire at all
    assert signal.generation == 0


async def test_cancelling_one_waiter_leaves_the_others_waiting_for_the_fire() -> None:
    # Given two waiters, one of which is cancelled
    signal = Signal()
    cancelled = asyncio.create_task(signal.wait())
    other = asyncio.create_task(signal.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)

    # Then the other is still woken by the next fire
    assert not other.done()
    signal.fire()
    async with asyncio.timeout(WAIT):
        await other
    assert cancelled.cancelled()
