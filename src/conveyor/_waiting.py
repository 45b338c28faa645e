"""Waiting for a run to reach a status (``Workflow.wait``)."""

from __future__ import annotations

import asyncio
import enum
import uuid
from typing import Generic, TypeVar

from ._errors import RecordNotFound, RunEnded
from ._event import Event, Header, make_role, run_state_change_topic, topic
from ._execution import Executor
from ._protocols import EventReceiver, EventStreamer
from ._record import Run
from ._runstate import RunState

__all__ = ["Waiter"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_BATCH = 64


class Waiter(Generic[T, S]):
    """Waits on a workflow's streams for runs to reach statuses.

    Each wait fixes its stream positions first (``stream_from_latest``), then reads the
    store, then consumes from the positions, so nothing between the two is missed.
    """

    def __init__(self, runs: Executor[T, S], streamer: EventStreamer) -> None:
        self._runs = runs
        self._store = runs.writer.store
        self._streamer = streamer
        self._definition = runs.definition

    async def wait(
        self, foreign_id: str, run_id: str, target: int, poll_interval: float | None
    ) -> Run[T, S]:
        """The run once it has reached ``target`` (see ``Workflow.wait``)."""
        name = self._definition.name
        terminal = self._definition.graph.is_terminal(target)
        tag = uuid.uuid4().hex[:12]
        topics = [run_state_change_topic(name)]
        if not terminal:
            topics.append(topic(name, target))
        receivers: list[EventReceiver] = []
        try:
            for t in topics:
                receivers.append(
                    await self._streamer.new_receiver(
                        t,
                        make_role("await", name, target, foreign_id, tag),
                        stream_from_latest=True,
                        poll_interval=poll_interval,
                    )
                )
            result = await self._check(run_id, target, terminal)
            if result is not None:
                return result
            if len(receivers) == 1:
                return await self._wait_one(receivers[0], run_id, target, terminal)
            return await self._wait_many(receivers, run_id, target, terminal)
        finally:
            for rx in receivers:
                await rx.close()

    async def _check(
        self, run_id: str, target: int, terminal: bool, reached: bool = False
    ) -> Run[T, S] | None:
        """The run if it has reached ``target``; ``None`` to keep waiting; ``RunEnded``."""
        try:
            record = await self._store.lookup(run_id)
        except RecordNotFound:
            return None
        state = record.run_state
        if state in (RunState.DATA_DELETED, RunState.REQUESTED_DATA_DELETED):
            raise RunEnded(record, f"run {run_id} had its data deleted")
        at_target = record.status == target
        if terminal:
            if at_target and state is RunState.COMPLETED:
                return self._runs.view(record)
        elif at_target or reached or target in record.meta.reached:
            return self._runs.view(record)
        if state.finished():
            name = self._definition.status_name
            raise RunEnded(
                record,
                f"run {run_id} ended ({state}) at {name(record.status)} "
                f"without reaching {name(target)}",
            )
        return None

    async def _wait_one(
        self, rx: EventReceiver, run_id: str, target: int, terminal: bool
    ) -> Run[T, S]:
        while True:
            for event in await rx.recv(_BATCH):
                if event.headers.get(Header.RUN_ID) != run_id:
                    continue
                result = await self._check(run_id, target, terminal)
                if result is not None:
                    return result

    async def _wait_many(
        self, receivers: list[EventReceiver], run_id: str, target: int, terminal: bool
    ) -> Run[T, S]:
        queue: asyncio.Queue[Event] = asyncio.Queue()

        async def pump(rx: EventReceiver) -> None:
            while True:
                for event in await rx.recv(_BATCH):
                    if event.headers.get(Header.RUN_ID) == run_id:
                        queue.put_nowait(event)

        status_topic = topic(self._definition.name, target)
        tasks = [asyncio.ensure_future(pump(rx)) for rx in receivers]
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait([getter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    for t in tasks:
                        if t.done():
                            t.result()  # a receiver failed: raise its error
                    continue
                event = getter.result()
                reached = event.headers.get(Header.TOPIC) == status_topic
                result = await self._check(run_id, target, terminal, reached)
                if result is not None:
                    return result
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks)
