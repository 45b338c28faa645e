"""The loop every event consumer shares: receive, shard, hold for lag, handle, acknowledge."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .._clock import Clock
from .._event import Event, Header
from .._protocols import EventReceiver
from .._supervisor import ProcessContext
from ._load import Ignore

__all__ = ["Batch", "Handle", "OpenReceiver", "Outcome", "consume", "event_time", "sequential"]

BATCH_SIZE = 64


@dataclass(slots=True)
class Outcome:
    """What a handler did with a batch: events to acknowledge, and the first failure."""

    acks: list[Event]
    error: BaseException | None = None


Batch = Callable[[Sequence[Event]], Awaitable[Outcome]]
"""Handles a batch of events (all of this shard, all accepted)."""
Handle = Callable[[Event], Awaitable[None]]
"""Handles one event; raises ``Ignore`` to acknowledge it without acting."""
OpenReceiver = Callable[[ProcessContext], Awaitable[EventReceiver]]
"""Opens the process's receiver (named after its role)."""


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
        acks: list[Event] = []
        for event in events:
            try:
                await handle(event)
            except Ignore as skip:
                if on_skip is not None:
                    on_skip(skip.reason)
            except Exception as exc:
                return Outcome(acks, exc)
            acks.append(event)
        return Outcome(acks)

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
) -> None:
    """Consume the receiver ``open_receiver`` opens, under the process's role, until cancelled.

    Events of other shards (``id % shards != shard - 1``) and events ``accept`` rejects
    are acknowledged without handling. A handler failure is raised after the batch's
    successes are acknowledged; the supervisor backs off and a new receiver redelivers
    from the cursor.
    """
    receiver = await open_receiver(ctx)
    ctx.watch(receiver)
    metrics = ctx.metrics
    lag = timedelta(seconds=consume_lag) if consume_lag > 0 else None

    def ours(event: Event) -> bool:
        if shards > 1 and event.id % shards != shard - 1:
            return False
        return accept is None or accept(event)

    try:
        while not ctx.draining:
            events = await receiver.recv(1 if lag is not None else BATCH_SIZE)
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
                await _handle(ctx, receiver, handler, mine, clock, lag_alert)
            ctx.busy = False
            ctx.progress()
    finally:
        ctx.busy = False
        await receiver.close()


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
) -> None:
    """Run the handler on a batch, record metrics, acknowledge, and raise its failure."""
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
    if outcome.error is not None:
        if mine[0] in outcome.acks:
            ctx.progress()  # the oldest event got through: back off from the base
        raise outcome.error
