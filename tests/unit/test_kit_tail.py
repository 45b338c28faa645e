"""``QueuedTail``: the hand-out side of a tail that a broker adapter's reader feeds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from conveyor.abc import AdapterError, Event, Tail, TailBatch
from conveyor.abc.kit import QueuedTail

_AT = datetime(2026, 1, 1, tzinfo=UTC)


def _events(*ids: int) -> list[Event]:
    return [Event(i, f"run-{i}", 1, {}, _AT) for i in ids]


class _Leaving(QueuedTail):
    def __init__(self) -> None:
        super().__init__("orders", batch=3)
        self.left = 0

    def _on_close(self) -> None:
        self.left += 1


async def test_a_read_takes_what_was_pushed_as_one_batch_up_to_the_batch_size() -> None:
    tail = QueuedTail("orders", batch=3)
    assert isinstance(tail, Tail)

    tail.push(_events(1, 2))
    tail.push(_events(3, 4))

    assert await anext(tail) == TailBatch(_events(1, 2, 3))
    assert await anext(tail) == TailBatch(_events(4))


async def test_a_read_waits_for_a_push() -> None:
    tail = QueuedTail("orders")
    reading = asyncio.create_task(anext(tail))
    await asyncio.sleep(0)  # one turn: the read is waiting
    assert not reading.done()

    tail.push(_events(7))

    assert await asyncio.wait_for(reading, 5) == TailBatch(_events(7))


async def test_pushing_nothing_wakes_no_read_but_a_gap_alone_is_a_batch() -> None:
    tail = QueuedTail("orders")
    tail.push([])
    reading = asyncio.create_task(anext(tail))
    await asyncio.sleep(0)
    assert not reading.done()

    tail.push([], gap=True)

    assert await asyncio.wait_for(reading, 5) == TailBatch([], gap=True)


async def test_a_gap_marks_the_next_batch_only() -> None:
    tail = QueuedTail("orders", batch=2)
    tail.push(_events(1))
    tail.push(_events(2, 3), gap=True)

    assert await anext(tail) == TailBatch(_events(1, 2), gap=True)
    assert await anext(tail) == TailBatch(_events(3), gap=False)


async def test_after_a_failure_reads_hand_out_what_waits_then_raise() -> None:
    tail = QueuedTail("orders")
    tail.push(_events(1))
    cause = OSError("gone")

    tail.fail("the tail of orders failed", cause)

    assert await anext(tail) == TailBatch(_events(1))
    with pytest.raises(AdapterError, match="the tail of orders failed") as raised:
        await anext(tail)
    assert raised.value.__cause__ is cause


async def test_close_ends_a_waiting_read_drops_what_waits_and_later_pushes_once() -> None:
    # Given a tail with an event waiting and a read that is waiting on another tail
    tail = _Leaving()
    tail.push(_events(1))
    waiting_tail = _Leaving()
    reading = asyncio.create_task(anext(waiting_tail))
    await asyncio.sleep(0)

    # When both close, twice
    for t in (tail, waiting_tail):
        await t.close()
        await t.close()
    tail.push(_events(2), gap=True)

    # Then the iterations end, and each left its reader once
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reading, 5)
    assert [batch async for batch in tail] == []
    assert (tail.closed, tail.left, waiting_tail.left) == (True, 1, 1)
