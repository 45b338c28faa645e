"""Waiting for runs to reach statuses (``Workflow.wait``).

With a streamer that ``TailsTopics``, the waits of one workflow in one process share one
tail per topic and a map from run ID to waits. An event costs a store lookup only if a
wait watches its run (one lookup then serves every wait on that run); a wait holds no
receiver, cursor or connection of its own, and one that ends or is cancelled leaves
nothing behind. A wait registers first and reads the store second, and the tails it
needs are open before it registers, so nothing that happens between the two is missed.
When a tail signals a gap (or fails and is opened again), every wait on it re-reads the
store.

A streamer without ``TailsTopics`` gets the fallback: each wait opens its own receivers
at the topics' ends (every event then goes to every wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import uuid
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from ._capabilities import Tail, TailsTopics
from ._errors import DecodeError, RecordNotFound, RunEnded
from ._event import Event, Header, make_role, run_state_change_topic, topic
from ._execution import Executor
from ._metrics import Metrics
from ._protocols import EventReceiver, EventStreamer, Logger
from ._record import Record, Run
from ._runstate import RunState
from ._supervisor import backoff_delay

__all__ = ["Waits"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_BATCH = 64
_PAUSED = str(int(RunState.PAUSED))
_RETRY_BACKOFF = 0.05


class _Wait:
    """One call of ``wait``: what it waits for and how it is told."""

    __slots__ = ("future", "run_id", "target", "terminal", "topics")

    def __init__(self, run_id: str, target: int, terminal: bool, topics: Sequence[str]) -> None:
        self.run_id = run_id
        self.target = target
        self.terminal = terminal
        self.topics = topics
        self.future: asyncio.Future[Record] = asyncio.get_running_loop().create_future()


class _Follow:
    """One shared tail of a topic and how many waits use it."""

    __slots__ = ("reached", "tail", "task", "topic", "users")

    def __init__(self, topic_name: str, reached: int | None, tail: Tail) -> None:
        self.topic = topic_name
        self.reached = reached  # the status its events announce (None: run-state changes)
        self.tail: Tail | None = tail
        self.task: asyncio.Task[None] | None = None
        self.users = 0


class Waits(Generic[T, S]):
    """Every wait of one workflow in this process (see the module docstring).

    Tails open with the first wait that needs them. While a holder (``run()`` or
    ``client()``) keeps the waits ``hold``-ing, idle tails stay open for the next wait;
    otherwise each closes with its last wait.
    """

    def __init__(
        self,
        runs: Executor[T, S],
        streamer: EventStreamer,
        logger: Logger,
        metrics: Metrics,
    ) -> None:
        self._runs = runs
        self._store = runs.writer.store
        self._streamer = streamer
        self._tails: TailsTopics | None = streamer if isinstance(streamer, TailsTopics) else None
        self._logger = logger
        self._metrics = metrics
        self._definition = runs.definition
        name = self._definition.name
        self._run_state_topic = run_state_change_topic(name)
        self._follows: dict[str, _Follow] = {}
        self._by_run: dict[str, list[_Wait]] = {}
        self._opening = asyncio.Lock()
        self._ending: set[asyncio.Task[None]] = set()
        self._holds = 0

    # ------------------------------------------------------------------ the API

    async def wait(
        self, foreign_id: str, run_id: str, target: int, poll_interval: float | None
    ) -> Run[T, S]:
        """The run once it has reached ``target`` (see ``Workflow.wait``)."""
        terminal = self._definition.graph.is_terminal(target)
        topics = [self._run_state_topic]
        if not terminal:
            topics.append(topic(self._definition.name, target))
        tails = self._tails
        if tails is None:
            return await self._wait_with_receivers(
                self._streamer, foreign_id, run_id, target, terminal, topics, poll_interval
            )
        w = _Wait(run_id, target, terminal, topics)
        followed: list[str] = []
        waits = self._by_run.setdefault(run_id, [])
        waits.append(w)
        try:
            await self._follow(tails, topics, target, followed)
            record = await self._first_read(foreign_id, run_id)
            if not w.future.done():
                found = _outcome(self._definition.status_name, record, w, False)
                if found is not None:
                    self._metrics.waits_found_by_store.inc()
                    return self._runs.view(found)
            found = await w.future
            self._metrics.waits_found_by_event.inc()
            return self._runs.view(found)
        finally:
            waits.remove(w)
            if not waits and self._by_run.get(run_id) is waits:
                del self._by_run[run_id]
            if w.future.done() and not w.future.cancelled():
                w.future.exception()  # retrieved, whatever the caller did
            self._unfollow(followed)

    def hold(self) -> None:
        """Keep idle tails open (a workflow's ``run()`` or ``client()`` began)."""
        self._holds += 1

    async def release(self) -> None:
        """Undo one ``hold``; the last one closes the tails no wait uses."""
        self._holds = max(0, self._holds - 1)
        if self._holds == 0:
            for follow in list(self._follows.values()):
                if follow.users == 0:
                    self._end(follow)
        await self._settle()

    def watched(self) -> int:
        """How many waits are open (on shared tails)."""
        return sum(len(waits) for waits in self._by_run.values())

    def open_tails(self) -> list[str]:
        """The topics with an open tail."""
        return sorted(self._follows)

    # ------------------------------------------------------------------ reading

    async def _first_read(self, foreign_id: str, run_id: str) -> Record:
        try:
            record: Record | None = await self._store.lookup(run_id)
        except RecordNotFound:
            record = None
        if (
            record is None
            or record.workflow_name != self._definition.name
            or record.foreign_id != foreign_id
        ):
            raise RecordNotFound(
                f"cannot wait: workflow {self._definition.name!r} has no run {run_id!r} "
                f"for foreign ID {foreign_id!r}"
            )
        return record

    async def _check(self, reached: dict[str, set[int]]) -> None:
        """Look up each run some wait watches, and settle the waits it answers."""
        ids = [run_id for run_id in reached if run_id in self._by_run]
        if not ids:
            return
        if len(ids) == 1:
            try:
                results: list[Record | BaseException] = [await self._store.lookup(ids[0])]
            except (RecordNotFound, DecodeError) as exc:
                results = [exc]
        else:
            results = await asyncio.gather(
                *(self._store.lookup(run_id) for run_id in ids), return_exceptions=True
            )
        status_name = self._definition.status_name
        for run_id, result in zip(ids, results, strict=True):
            if isinstance(result, RecordNotFound):
                continue
            if isinstance(result, DecodeError):  # that run's record alone: tell its waits
                for w in self._by_run.get(run_id, ()):
                    if not w.future.done():
                        w.future.set_exception(result)
                continue
            if isinstance(result, BaseException):
                raise result
            statuses = reached[run_id]
            for w in list(self._by_run.get(run_id, ())):
                if w.future.done():
                    continue
                try:
                    found = _outcome(status_name, result, w, w.target in statuses)
                except RunEnded as exc:
                    w.future.set_exception(exc)
                    continue
                if found is not None:
                    w.future.set_result(found)

    def _watched(self, follow: _Follow, events: Sequence[Event]) -> dict[str, set[int]]:
        """The watched runs among ``events``, each with the statuses they announce."""
        by_run = self._by_run
        reached: dict[str, set[int]] = {}
        announced = follow.reached
        for event in events:
            headers = event.headers
            run_id = headers.get(Header.RUN_ID)
            if run_id is None or run_id not in by_run:
                continue
            if announced is None and headers.get(Header.RUN_STATE) == _PAUSED:
                continue  # a wait keeps waiting while its run is paused
            statuses = reached.setdefault(run_id, set())
            if announced is not None:
                statuses.add(announced)
        return reached

    def _everyone_on(self, follow: _Follow) -> dict[str, set[int]]:
        return {
            run_id: set()
            for run_id, waits in self._by_run.items()
            if any(follow.topic in w.topics for w in waits)
        }

    # ------------------------------------------------------------------ tails

    async def _follow(
        self, streamer: TailsTopics, topics: Sequence[str], target: int, followed: list[str]
    ) -> None:
        """Open (or share) a tail of each topic; ``followed`` gets each one as it is used."""
        for name in topics:
            follow = self._follows.get(name)
            if follow is None:
                async with self._opening:
                    follow = self._follows.get(name)
                    if follow is None:
                        reached = None if name == self._run_state_topic else target
                        follow = _Follow(name, reached, await streamer.tail(name))
                        follow.task = asyncio.get_running_loop().create_task(
                            self._pump(streamer, follow), name=f"conveyor:tail:{name}"
                        )
                        self._follows[name] = follow
            follow.users += 1
            followed.append(name)

    def _unfollow(self, topics: Sequence[str]) -> None:
        for name in topics:
            follow = self._follows.get(name)
            if follow is None:
                continue
            follow.users -= 1
            if follow.users <= 0 and self._holds == 0:
                self._end(follow)

    def _end(self, follow: _Follow) -> None:
        if self._follows.get(follow.topic) is follow:
            del self._follows[follow.topic]
        task = follow.task
        if task is not None and not task.done():
            task.cancel()
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def _settle(self) -> None:
        if self._ending:
            await asyncio.wait(set(self._ending))

    async def _pump(self, streamer: TailsTopics, follow: _Follow) -> None:
        """Hand a tail's events to the waits that watch their runs, until ended."""
        failures = 0
        try:
            while True:
                try:
                    if follow.tail is None:
                        follow.tail = await streamer.tail(follow.topic)
                        await self._check(self._everyone_on(follow))  # what we missed
                    batch = await anext(follow.tail)
                    if batch.gap:
                        await self._check(self._everyone_on(follow))
                    await self._check(self._watched(follow, batch.events))
                    failures = 0
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    self._logger.error(
                        "wait: reading the topic failed; re-reading the store",
                        exc,
                        topic=follow.topic,
                    )
                    tail, follow.tail = follow.tail, None
                    if tail is not None:
                        with contextlib.suppress(Exception):
                            await tail.close()
                    await asyncio.sleep(backoff_delay(_RETRY_BACKOFF, failures))
        finally:
            if follow.tail is not None:
                with contextlib.suppress(Exception):
                    await follow.tail.close()

    # ------------------------------------------------------------------ fallback

    async def _wait_with_receivers(
        self,
        streamer: EventStreamer,
        foreign_id: str,
        run_id: str,
        target: int,
        terminal: bool,
        topics: Sequence[str],
        poll_interval: float | None,
    ) -> Run[T, S]:
        """Each wait on its own receivers (streamers without ``TailsTopics``)."""
        name = self._definition.name
        tag = uuid.uuid4().hex[:12]
        w = _Wait(run_id, target, terminal, topics)
        receivers: list[EventReceiver] = []
        status_name = self._definition.status_name
        try:
            for topic_name in topics:
                receivers.append(
                    await streamer.new_receiver(
                        topic_name,
                        make_role("await", name, target, foreign_id, tag),
                        stream_from_latest=True,
                        poll_interval=poll_interval,
                    )
                )
            found = _outcome(status_name, await self._first_read(foreign_id, run_id), w, False)
            if found is not None:
                self._metrics.waits_found_by_store.inc()
                return self._runs.view(found)
            queue: asyncio.Queue[Event] = asyncio.Queue()
            status_topic = topics[1] if len(topics) > 1 else None

            async def pump(rx: EventReceiver) -> None:
                while True:
                    for event in await rx.recv(_BATCH):
                        if event.headers.get(Header.RUN_ID) == run_id:
                            queue.put_nowait(event)

            tasks = [asyncio.ensure_future(pump(rx)) for rx in receivers]
            try:
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    await asyncio.wait([getter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        for task in tasks:
                            if task.done():
                                task.result()  # a receiver failed: raise its error
                        continue
                    event = getter.result()
                    reached = event.headers.get(Header.TOPIC) == status_topic
                    record = await self._store.lookup(run_id)
                    found = _outcome(status_name, record, w, reached)
                    if found is not None:
                        self._metrics.waits_found_by_event.inc()
                        return self._runs.view(found)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
        finally:
            w.future.cancel()
            for rx in receivers:
                await rx.close()


def _outcome(
    status_name: Callable[[int], str], record: Record, w: _Wait, reached: bool
) -> Record | None:
    """``record`` if it answers the wait, ``None`` to keep waiting; raises ``RunEnded``."""
    state = record.run_state
    if state in (RunState.DATA_DELETED, RunState.REQUESTED_DATA_DELETED):
        raise RunEnded(record, f"run {record.run_id} had its data deleted")
    target = w.target
    at_target = record.status == target
    if w.terminal:
        if at_target and state is RunState.COMPLETED:
            return record
    elif at_target or reached or target in record.meta.reached:
        return record
    if state.finished():
        raise RunEnded(
            record,
            f"run {record.run_id} ended ({state}) at {status_name(record.status)} "
            f"without reaching {status_name(target)}",
        )
    return None
