"""The loop every event consumer shares: receive, shard, hold for lag, handle, acknowledge,
and attempt again, each alone, the runs whose attempt failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .._attempts import AttemptFailed
from .._clock import Clock
from .._event import Event, Header
from .._protocols import EventReceiver
from .._supervisor import ProcessContext
from ._load import Ignore
from ._retry import Retries

__all__ = [
    "Batch",
    "Handle",
    "OpenReceiver",
    "Outcome",
    "Pending",
    "consume",
    "event_time",
    "sequential",
]

BATCH_SIZE = 64


@dataclass(slots=True)
class Outcome:
    """What a handler did with a batch: events to acknowledge, runs to attempt again (each
    event with its delay in seconds; also acknowledged), and the first failure."""

    acks: list[Event]
    error: BaseException | None = None
    retries: list[tuple[Event, float]] = field(default_factory=list)


Batch = Callable[[Sequence[Event]], Awaitable[Outcome]]
"""Handles a batch of events (all of this shard, all accepted)."""
Handle = Callable[[Event], Awaitable[None]]
"""Handles one event; raises ``Ignore`` to acknowledge it without acting."""
OpenReceiver = Callable[[ProcessContext], Awaitable[EventReceiver]]
"""Opens the process's receiver (named after its role)."""
Pending = Callable[[str], Awaitable[Sequence[tuple[Event, float]]]]
"""The attempts a process (by name) left due when it last held its role: event, delay."""


def event_time(event: Event) -> datetime:
    """When the engine wrote the event by the workflow's clock (else the streamer's time)."""
    raw = event.headers.get(Header.EVENT_TIME)
    if raw:
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            pass
    return event.created_at


def sequential(handle: Handle, on_skip: Callable[[str], None] | None = None) -> Batch:
    """A batch handler that handles events one by one and stops at the first failure.

    A handler raising ``Ignore`` has the event acknowledged and the reason counted.
    """

    async def run(events: Sequence[Event]) -> Outcome:
        outcome = Outcome([])
        for event in events:
            try:
                await handle(event)
            except Ignore as skip:
                if on_skip is not None:
                    on_skip(skip.reason)
            except AttemptFailed as failed:
                outcome.retries.append((event, failed.delay))
            except Exception as exc:
                outcome.error = exc
                return outcome
            outcome.acks.append(event)
        return outcome

    return run


async def consume(
    ctx: ProcessContext,
    *,
    open_receiver: OpenReceiver,
    clock: Clock,
    handler: Batch,
    shard: int = 1,
    shards: int = 1,
    consume_lag: float = 0.0,
    accept: Callable[[Event], bool] | None = None,
    lag_alert: float = 0.0,
    pending: Pending | None = None,
) -> None:
    """Consume the receiver ``open_receiver`` opens, under the process's role, until cancelled.

    Events of other shards (``id % shards != shard - 1``) and events ``accept`` rejects
    are acknowledged without handling. An event whose attempt failed and was recorded
    (``Outcome.retries``) is acknowledged, and its run attempted again alone after the
    delay, while the receiver goes on; ``pending`` gives the ones a previous holder of
    the role left. Any other handler failure is raised after the batch's successes are
    acknowledged; the supervisor backs off and a new receiver redelivers from the cursor.
    """
    ctx.opening = True
    try:
        receiver = await open_receiver(ctx)
    finally:
        ctx.opening = False
    ctx.watch(receiver)
    metrics = ctx.metrics
    lag = timedelta(seconds=consume_lag) if consume_lag > 0 else None
    size = 1 if lag is not None else BATCH_SIZE
    retries = Retries()
    ctx.retries = retries
    if pending is not None:
        for event, delay in await pending(ctx.name):
            retries.add(event, delay)
    intake = _Intake(receiver, size, retries)

    def ours(event: Event) -> bool:
        if shards > 1 and event.id % shards != shard - 1:
            return False
        return accept is None or accept(event)

    try:
        while not ctx.draining:
            events, retried = await intake.next()
            if retried:
                ctx.busy = True
                await _retry(ctx, retries, handler, events)
                ctx.busy = False
                continue
            ctx.busy = True
            mine: list[Event] = []
            for event in events:
                if ours(event):
                    mine.append(event)
                    continue
                if metrics is not None:
                    metrics.skipped("filtered out")
                await receiver.ack(event)
            if mine:
                if lag is not None:
                    await _hold_for_lag(ctx, clock, event_time(mine[0]) + lag)
                await _handle(ctx, receiver, handler, mine, clock, lag_alert, retries)
            ctx.busy = False
            ctx.progress()
    finally:
        # Closing counts as work in hand: a draining supervisor waits for it instead of
        # cancelling it half-way (a broker's receiver hands its unacknowledged events back
        # as it closes; cut short, they would wait for the broker's redelivery timeout).
        ctx.busy = True
        try:
            await intake.close()
            await receiver.close()
        finally:
            ctx.busy = False


class _Intake:
    """Where a consumer's next batch comes from: its receiver, or runs due a retry.

    While retries wait, a receive stays pending across them (it is never abandoned
    half-way, so no event it handed out is lost); ``close`` cancels it, leaving what it
    had not handed out unacknowledged.
    """

    def __init__(self, receiver: EventReceiver, size: int, retries: Retries) -> None:
        self._receiver = receiver
        self._size = size
        self._retries = retries
        self._receiving: asyncio.Future[Sequence[Event]] | None = None

    async def next(self) -> tuple[Sequence[Event], bool]:
        """The next events, and whether they are retries (already acknowledged)."""
        if self._receiving is None and not self._retries:
            return await self._receiver.recv(self._size), False
        if self._receiving is None:
            self._receiving = asyncio.ensure_future(self._receiver.recv(self._size))
        receiving = self._receiving
        due = asyncio.ensure_future(self._retries.due())
        try:
            await asyncio.wait({receiving, due}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not due.done():
                due.cancel()
                await asyncio.wait({due})
        if not due.cancelled():
            return due.result(), True
        self._receiving = None
        return receiving.result(), False

    async def close(self) -> None:
        receiving, self._receiving = self._receiving, None
        if receiving is None:
            return
        if not receiving.done():
            receiving.cancel()
            await asyncio.wait({receiving})
        if not receiving.cancelled():
            receiving.exception()  # retrieved; what it handed out is delivered again


async def _retry(
    ctx: ProcessContext, retries: Retries, handler: Batch, events: Sequence[Event]
) -> None:
    """Attempt runs again (their events were acknowledged when their attempt failed)."""
    outcome = await handler(events)
    for event, delay in outcome.retries:
        retries.add(event, delay)
    _count_failures(ctx, outcome)
    if outcome.error is not None:
        raise outcome.error
    ctx.progress()


def _count_failures(ctx: ProcessContext, outcome: Outcome) -> None:
    """Failed attempts that back off their run count as the process's errors."""
    if ctx.metrics is not None and outcome.retries:
        ctx.metrics.errors.inc(len(outcome.retries))


async def _hold_for_lag(ctx: ProcessContext, clock: Clock, due: datetime) -> None:
    """Wait (on business time) until an event is old enough to be consumed."""
    if clock.now() >= due:
        return
    ctx.busy = False  # waiting on business time, not on work
    ctx.clock_wait = True
    try:
        await clock.sleep_until(due)
    finally:
        ctx.clock_wait = False
    ctx.busy = True


async def _handle(
    ctx: ProcessContext,
    receiver: EventReceiver,
    handler: Batch,
    mine: list[Event],
    clock: Clock,
    lag_alert: float,
    retries: Retries,
) -> None:
    """Run the handler on a batch, record metrics, acknowledge, schedule the runs to
    attempt again, and raise its failure."""
    metrics = ctx.metrics
    started = 0.0
    if metrics is not None:
        age = (clock.now() - event_time(mine[-1])).total_seconds()
        metrics.observe_lag(max(0.0, age), lag_alert)
        started = time.perf_counter()
    outcome = await handler(mine)
    if metrics is not None:
        elapsed = time.perf_counter() - started
        for _ in outcome.acks:
            metrics.latency.observe(elapsed)
    for event in outcome.acks:
        await receiver.ack(event)
    for event, delay in outcome.retries:
        await receiver.ack(event)
        retries.add(event, delay)
    _count_failures(ctx, outcome)
    if outcome.error is not None:
        if mine[0] in outcome.acks:
            ctx.progress()  # the oldest event got through: back off from the base
        raise outcome.error
