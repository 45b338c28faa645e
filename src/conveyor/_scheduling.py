"""Cron schedules of runs (``Workflow.schedule``): one process per foreign ID and spec."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from ._clock import Clock
from ._errors import RecordNotFound, WorkflowInProgress
from ._event import make_role
from ._metrics import Metrics
from ._protocols import RecordStore
from ._schedule import Schedule
from ._supervisor import Process, ProcessContext, Supervisor

__all__ = ["run_schedule"]


async def run_schedule(
    supervisor: Supervisor,
    *,
    workflow_name: str,
    foreign_id: str,
    spec: str,
    schedule: Schedule,
    store: RecordStore,
    clock: Clock,
    metrics: Metrics,
    trigger: Callable[[], Awaitable[object]],
    check: Callable[[datetime], Awaitable[bool]] | None,
    err_backoff: float,
) -> None:
    """Run the schedule as a process under its own role until the caller is cancelled
    (then ``CancelledError`` propagates) or the supervisor stops (then return normally).

    Slots come from the creation time of the foreign ID's latest run, then from each slot
    fired; ``trigger`` is skipped for a slot ``check`` rejects, and a ``WorkflowInProgress``
    (the previous run is still active) skips the slot.
    """
    name = make_role(foreign_id, "scheduler", spec)

    async def body(ctx: ProcessContext) -> None:
        try:
            last = (await store.latest(workflow_name, foreign_id)).created_at
        except RecordNotFound:
            last = clock.now()
        while not ctx.draining:
            slot = schedule.next_after(last)
            await clock.sleep_until(slot)
            ctx.busy = True
            if check is None or await check(slot):
                try:
                    await trigger()
                except WorkflowInProgress:
                    pass
            last = max(slot, clock.now())
            ctx.busy = False
            ctx.progress()

    process = Process(
        name,
        make_role(workflow_name, foreign_id, "scheduler", spec),
        body,
        err_backoff,
        metrics.process(name),
    )
    task = supervisor.start(process)
    try:
        # The supervisor's task ends only when it is cancelled: by our caller (the
        # CancelledError reaches the caller from this wait) or by stop() (a normal return).
        await asyncio.wait({task})
    finally:
        await supervisor.end(name)
