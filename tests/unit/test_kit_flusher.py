"""``CursorFlusher``: acks mark positions; batches of them are written soon, retried, and
written on close."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from conveyor.abc import AdapterError
from conveyor.abc.kit import CursorFlusher, CursorKey

WAIT = 10.0  # the backstop: nothing below should take anywhere near this long


class _Storage:
    """A cursor table: keeps the highest position per cursor, records every batch, and can
    be told to fail or to hold a write until released."""

    def __init__(self) -> None:
        self.stored: dict[CursorKey, int] = {}
        self.batches: list[dict[CursorKey, int]] = []
        self.failures = 0
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.wrote = asyncio.Condition()

    async def write(self, batch: Mapping[CursorKey, int]) -> None:
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.failures:
            self.failures -= 1
            raise AdapterError("the database is away")
        async with self.wrote:
            self.batches.append(dict(batch))
            for key, position in batch.items():
                self.stored[key] = max(self.stored.get(key, -1), position)
            self.wrote.notify_all()

    async def until(self, expected: dict[CursorKey, int]) -> None:
        async with asyncio.timeout(WAIT), self.wrote:
            await self.wrote.wait_for(lambda: self.stored == expected)


async def test_marks_made_together_are_written_in_one_batch() -> None:
    # Given acks of three cursors in one turn of the event loop
    storage = _Storage()
    flusher = CursorFlusher(storage.write)
    flusher.mark("t", "a", 3)
    flusher.mark("t", "b", 5)
    flusher.mark("u", "a", 1)

    # Then they are written soon after, in one call
    await storage.until({("t", "a"): 3, ("t", "b"): 5, ("u", "a"): 1})
    assert len(storage.batches) == 1
    await flusher.close()


async def test_a_cursor_only_moves_forward() -> None:
    storage = _Storage()
    flusher = CursorFlusher(storage.write)
    flusher.mark("t", "a", 7)
    flusher.mark("t", "a", 4)  # older news: ignored
    assert flusher.unsaved("t", "a") == 7
    await flusher.flush()
    assert storage.batches == [{("t", "a"): 7}]
    await flusher.close()


async def test_a_failed_write_is_retried_until_it_succeeds() -> None:
    # Given storage that fails the first two writes
    storage = _Storage()
    storage.failures = 2
    flusher = CursorFlusher(storage.write, retry=0.001)

    # When a position is marked
    flusher.mark("t", "a", 9)

    # Then it is written in the end, by the background retries alone
    await storage.until({("t", "a"): 9})
    assert storage.failures == 0
    assert flusher.pending == 0
    await flusher.close()


async def test_flush_raises_the_failure_and_keeps_the_positions_marked() -> None:
    storage = _Storage()
    flusher = CursorFlusher(storage.write)
    flusher.mark("t", "a", 2)
    storage.failures = 1

    with pytest.raises(AdapterError):
        await flusher.flush()
    assert flusher.unsaved("t", "a") == 2
    await flusher.flush()
    assert storage.stored == {("t", "a"): 2}
    await flusher.close()


async def test_flush_of_one_cursor_writes_only_that_one() -> None:
    storage = _Storage()
    flusher = CursorFlusher(storage.write, delay=WAIT)  # no background write meanwhile
    flusher.mark("t", "a", 1)
    flusher.mark("t", "b", 2)

    await flusher.flush(only=("t", "b"))

    assert storage.batches == [{("t", "b"): 2}]
    assert flusher.unsaved("t", "a") == 1
    await flusher.close()
    assert storage.stored == {("t", "a"): 1, ("t", "b"): 2}


async def test_a_position_being_written_still_counts_as_unsaved_and_flush_waits_for_it() -> None:
    # Given a background write that has started and not finished
    storage = _Storage()
    storage.hold = asyncio.Event()
    flusher = CursorFlusher(storage.write)
    flusher.mark("t", "a", 4)
    async with asyncio.timeout(WAIT):
        await storage.started.wait()

    # Then a reader opening the cursor now still learns its newest position
    assert flusher.unsaved("t", "a") == 4
    # And a flush returns only once that write is stored
    flushing = asyncio.create_task(flusher.flush())
    storage.hold.set()
    async with asyncio.timeout(WAIT):
        await flushing
    assert storage.stored == {("t", "a"): 4}
    assert flusher.unsaved("t", "a") is None
    await flusher.close()


async def test_close_writes_what_is_marked_and_is_idempotent() -> None:
    # Given a mark whose background write is far off
    storage = _Storage()
    flusher = CursorFlusher(storage.write, delay=WAIT)
    flusher.mark("t", "a", 6)

    # When the flusher closes (twice)
    await flusher.close()
    await flusher.close()

    # Then the position was written once, at close
    assert storage.batches == [{("t", "a"): 6}]


async def test_close_gives_up_quietly_when_storage_is_away() -> None:
    storage = _Storage()
    storage.failures = 10
    flusher = CursorFlusher(storage.write, delay=WAIT)
    flusher.mark("t", "a", 6)
    await flusher.close()  # no error: at worst the events are delivered again
    assert storage.stored == {}


async def test_refresh_rewrites_the_open_cursors_while_nothing_is_marked() -> None:
    # Given a flusher that refreshes the open cursors often
    storage = _Storage()
    flusher = CursorFlusher(
        storage.write, refresh=lambda: [(("t", "open"), 11)], refresh_every=0.001
    )

    # When one ack starts it and its batch is written
    flusher.mark("t", "acked", 1)
    await storage.until({("t", "acked"): 1})

    # Then the open cursor is written too, without any further mark
    await storage.until({("t", "acked"): 1, ("t", "open"): 11})
    await flusher.close()


def test_refresh_needs_an_interval() -> None:
    async def write(batch: Mapping[CursorKey, int]) -> None:
        pass

    with pytest.raises(ValueError, match="refresh_every"):
        CursorFlusher(write, refresh=list)
