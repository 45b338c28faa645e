"""``Coalescer``: concurrent calls share one batch, each caller gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.adapters.postgres._coalesce import Coalescer


class Recorder:
    """A batch function that records its batches and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.started.set()
        await self.gate.wait()
        if 13 in items:
            raise ValueError("unlucky batch")
        return [i * 10 for i in items]


async def test_calls_made_in_one_turn_share_one_batch() -> None:
    batch = Recorder()
    coalescer = Coalescer(batch, "test")

    results = await asyncio.gather(*(coalescer.submit(i) for i in range(5)))

    assert results == [0, 10, 20, 30, 40]
    assert batch.batches == [[0, 1, 2, 3, 4]]


async def test_a_failed_batch_fails_every_caller_in_it() -> None:
    coalescer = Coalescer(Recorder(), "test")

    results = await asyncio.gather(
        coalescer.submit(1), coalescer.submit(13), return_exceptions=True
    )

    assert all(isinstance(r, ValueError) for r in results)
    assert await coalescer.submit(2) == 20  # the next batch is unaffected


async def test_a_cancelled_leader_does_not_strand_the_others() -> None:
    batch = Recorder()
    batch.gate.clear()
    coalescer = Coalescer(batch, "test")
    tasks = [asyncio.create_task(coalescer.submit(i)) for i in range(3)]
    await batch.started.wait()

    tasks[0].cancel()  # the first caller runs the shared batch
    batch.gate.set()

    assert await asyncio.wait_for(asyncio.gather(*tasks[1:]), 5.0) == [10, 20]
    assert tasks[0].cancelled()
    await coalescer.close()


async def test_eager_a_lone_call_goes_at_once_and_a_crowd_forms_the_next_batch() -> None:
    batch = Recorder()
    coalescer = Coalescer(batch, "test", in_flight=1)

    assert await coalescer.submit(7) == 70
    assert batch.batches == [[7]]

    batch.gate.clear()
    first = asyncio.create_task(coalescer.submit(1))
    await batch.started.wait()
    crowd = [asyncio.create_task(coalescer.submit(i)) for i in range(2, 6)]
    await asyncio.sleep(0)
    assert batch.batches == [[7], [1]]  # the crowd waits for the batch in flight
    batch.gate.set()

    assert await asyncio.gather(first, *crowd) == [10, 20, 30, 40, 50]
    assert batch.batches == [[7], [1], [2, 3, 4, 5]]


async def test_eager_a_cancelled_caller_leaves_the_queue_moving() -> None:
    batch = Recorder()
    batch.gate.clear()
    coalescer = Coalescer(batch, "test", in_flight=1)
    first = asyncio.create_task(coalescer.submit(1))
    await batch.started.wait()
    queued = [asyncio.create_task(coalescer.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)

    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    batch.gate.set()

    assert await asyncio.wait_for(asyncio.gather(*queued), 5.0) == [20, 30]
    await coalescer.close()


async def test_limit_splits_a_large_turn() -> None:
    batch = Recorder()
    coalescer = Coalescer(batch, "test", limit=2, in_flight=1)
    batch.gate.clear()
    first = asyncio.create_task(coalescer.submit(0))
    await batch.started.wait()
    rest = [asyncio.create_task(coalescer.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    batch.gate.set()

    assert await asyncio.gather(first, *rest) == [0, 10, 20, 30, 40, 50]
    assert batch.batches[0] == [0]
    assert sorted(len(b) for b in batch.batches[1:]) == [1, 2, 2]
