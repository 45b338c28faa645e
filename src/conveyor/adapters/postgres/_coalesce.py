"""``Coalescer``: concurrent calls share one statement.

Many callers that each want one thing (a trigger's insert, a run's lookup) at the same
time pay one round trip and one commit between them, and each gets its own item's
result. Two ways to gather a batch:

- per turn (the default): the first call of an event-loop turn yields once, and every
  call made meanwhile joins its batch. For callers that arrive together (a step
  consumer looks up its whole batch of runs in one turn). The first caller runs the
  batch; if it is cancelled, the batch runs again for the others: reads only.
- eager (``in_flight=n``): a call starts a batch at once if fewer than ``n`` are under
  way, else it waits for one to finish and goes with every call that queued meanwhile. A
  lone caller waits for nothing; many callers form batches as large as the load (group
  commit).

A caller that is cancelled neither cancels the others nor loses their answers (its own
item may still have been applied, exactly as a cancelled single statement may have been).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class Coalescer(Generic[I, R]):
    """Runs ``batch(items)`` for items submitted together (see the module docstring).

    ``batch`` returns one result per item, in order; an exception it raises is every
    caller's. ``limit`` caps a batch (the rest start the next one).
    """

    def __init__(
        self,
        batch: Callable[[list[I]], Awaitable[Sequence[R]]],
        name: str,
        *,
        limit: int = 1024,
        in_flight: int = 0,
    ) -> None:
        self._batch = batch
        self._in_flight = in_flight
        self._name = name
        self._limit = limit
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0  # batches under way (in tasks, or inline in a caller)

    async def submit(self, item: I) -> R:
        if self._in_flight and self._running < self._in_flight and not self._pending:
            # Nothing queued and room for a batch: this caller's item goes now, from its
            # own task (no hand-over to another task, which would cost a loop turn).
            self._running += 1
            try:
                (result,) = await self._batch([item])
            finally:
                self._running -= 1
                self._drain()
            return result
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut))
        if self._in_flight:
            self._drain()
            return await fut
        if self._scheduled:
            return await fut
        # The first call of the turn leads: it lets the turn's other calls join, then
        # runs the batch from its own task. If it is cancelled, a task answers the rest.
        self._scheduled = True
        try:
            await asyncio.sleep(0)
        finally:
            self._scheduled = False
            batch, self._pending = self._pending, []
        try:
            await self._run(batch)
        except BaseException:
            rest = [(i, f) for i, f in batch if not f.done() and f is not fut]
            if rest:
                self._running += 1
                task = loop.create_task(self._run(rest), name=self._name)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._done, rest))
            raise
        return await fut

    def _drain(self) -> None:
        if self._pending and self._running < self._in_flight:
            self._start()

    def _start(self) -> None:
        pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for i in range(0, len(pending), self._limit):
            chunk = [(item, fut) for item, fut in pending[i : i + self._limit] if not fut.done()]
            if chunk:
                self._running += 1
                task = loop.create_task(self._run(chunk), name=self._name)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._done, chunk))

    async def _run(self, chunk: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await self._batch([item for item, _ in chunk])
        except Exception as exc:
            for _, fut in chunk:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), result in zip(chunk, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    def _done(self, chunk: list[tuple[I, asyncio.Future[R]]], task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        for _, fut in chunk:  # the task was cancelled (the loop is closing)
            if not fut.done():
                fut.cancel()
        self._running -= 1
        self._drain()

    async def close(self) -> None:
        """Wait for the batches under way (their callers are owed an answer)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
