"""Schedules: cron slots trigger runs, under the workflow's clock and a role."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from conveyor import (
    Builder,
    InvalidSchedule,
    NotRunning,
    Run,
    RunState,
    State,
    Workflow,
)
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.testing import FakeClock, run_until_idle, wait_for


class Report(enum.IntEnum):
    UNKNOWN = 0
    REQUESTED = 1
    SENT = 2


@dataclass
class Job:
    kind: str = ""


async def send(run: Run[Job, Report]) -> Report:
    return Report.SENT


def builder(*, hold: bool = False) -> Builder[Job, Report]:
    b = Builder("reports", Job, Report)
    if hold:  # runs wait for a callback, so they stay in progress
        b.add_callback(Report.REQUESTED, lambda run, p: Report.SENT, Report.SENT)
    else:
        b.add_step(Report.REQUESTED, send, Report.SENT)
    return b


Scheduled = tuple[Workflow[Job, Report], MemoryRecordStore, FakeClock]


@pytest.fixture
async def scheduled() -> AsyncIterator[Callable[..., Awaitable[Scheduled]]]:
    tasks: list[asyncio.Task[None]] = []
    workflows: list[Workflow[Job, Report]] = []

    async def start(
        spec: str,
        *,
        start: datetime = datetime(2024, 4, 9, 8, 30, tzinfo=UTC),
        hold: bool = False,
        instances: int = 1,
        store: MemoryRecordStore | None = None,
        **kwargs: object,
    ) -> Scheduled:
        clock = FakeClock(start)
        store = store or MemoryRecordStore()
        streamer, roles = MemoryEventStreamer(), MemoryRoleScheduler()
        b = builder(hold=hold)
        for _ in range(instances):
            wf = b.build(streamer, store, roles, clock=clock)
            await wf.run()
            workflows.append(wf)
            tasks.append(asyncio.create_task(wf.schedule("andrew", spec, **kwargs)))  # type: ignore[arg-type]
        await run_until_idle(*workflows)
        return workflows[0], store, clock

    yield start
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for wf in workflows:
        await wf.stop()


async def runs(store: MemoryRecordStore) -> list[datetime]:
    return [r.created_at for r in store.all_records()]


async def test_monthly_schedule_fires_on_the_first_of_each_month(
    scheduled: Callable[..., Awaitable[Scheduled]],
) -> None:
    wf, store, clock = await scheduled("@monthly")
    # Nothing before May 1st
    clock.set(datetime(2024, 4, 30, 23, 59, tzinfo=UTC))
    await run_until_idle(wf)
    assert await runs(store) == []
    # A run on May 1st, completed by its step
    clock.set(datetime(2024, 5, 1, tzinfo=UTC))
    first = await wait_for(wf, "andrew", lambda r: r.run_state is RunState.COMPLETED)
    # A new run on June 1st
    clock.set(datetime(2024, 6, 1, tzinfo=UTC))
    second = await wait_for(wf, "andrew", lambda r: r.run_id != first.run_id)
    assert second.created_at == datetime(2024, 6, 1, tzinfo=UTC)
    await run_until_idle(wf)
    assert await runs(store) == [datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)]


async def test_hourly_schedule_over_a_day(scheduled: Callable[..., Awaitable[Scheduled]]) -> None:
    wf, store, clock = await scheduled("@hourly", start=datetime(2024, 1, 1, tzinfo=UTC))
    for hour in range(1, 25):
        clock.set(datetime(2024, 1, 1, tzinfo=UTC).replace(day=1 + hour // 24, hour=hour % 24))
        await wait_for(
            wf,
            "andrew",
            lambda r: r.run_state is RunState.COMPLETED and r.created_at == clock.now(),
        )
    assert len(await runs(store)) == 24


async def test_filter_skips_slots(scheduled: Callable[..., Awaitable[Scheduled]]) -> None:
    seen: list[datetime] = []

    def only_odd_months(slot: datetime) -> bool:
        seen.append(slot)
        return slot.month % 2 == 1

    wf, store, clock = await scheduled("0 0 1 * *", filter=only_odd_months)
    for month in (5, 6, 7):
        clock.set(datetime(2024, month, 1, tzinfo=UTC))
        await run_until_idle(wf)
        assert len(seen) == month - 4  # the filter has looked at this slot
    assert [s.month for s in seen] == [5, 6, 7]
    assert [c.month for c in await runs(store)] == [5, 7]


async def test_two_instances_do_not_double_fire(
    scheduled: Callable[..., Awaitable[Scheduled]],
) -> None:
    wf, store, clock = await scheduled("@daily", instances=2)
    states = [s for name, s in wf.states().items() if "scheduler" in name]
    for day in (10, 11, 12):
        clock.set(datetime(2024, 4, day, tzinfo=UTC))

        def done_that_day(r: Run[Job, Report], day: int = day) -> bool:
            return r.created_at.day == day and r.run_state is RunState.COMPLETED

        await wait_for(wf, "andrew", done_that_day)
    await run_until_idle(wf)
    assert [c.day for c in await runs(store)] == [10, 11, 12]
    assert states  # the schedule shows up among the processes


async def test_in_progress_run_makes_a_slot_pass_without_a_new_run(
    scheduled: Callable[..., Awaitable[Scheduled]],
) -> None:
    wf, store, clock = await scheduled("@daily", hold=True)
    clock.set(datetime(2024, 4, 10, tzinfo=UTC))
    await wait_for(wf, "andrew", lambda r: r.status is Report.REQUESTED)
    clock.set(datetime(2024, 4, 11, tzinfo=UTC))
    await run_until_idle(wf)
    assert len(await runs(store)) == 1


async def test_a_slot_missed_while_down_fires_at_start(
    scheduled: Callable[..., Awaitable[Scheduled]],
) -> None:
    # Given a completed run created on April 1st
    store = MemoryRecordStore()
    clock = FakeClock(datetime(2024, 4, 1, tzinfo=UTC))
    wf = builder().build(MemoryEventStreamer(), store, MemoryRoleScheduler(), clock=clock)
    async with wf:
        await wf.trigger("andrew")
        await wait_for(wf, "andrew", lambda r: r.run_state is RunState.COMPLETED)
    # When the service comes back on May 3rd, the May 1st slot fires at once
    wf2, _, _ = await scheduled("@monthly", start=datetime(2024, 5, 3, tzinfo=UTC), store=store)
    latest = await wait_for(wf2, "andrew", lambda r: r.created_at.month == 5)
    assert latest.created_at == datetime(2024, 5, 3, tzinfo=UTC)


async def test_schedule_state_is_reported_while_it_runs() -> None:
    clock = FakeClock()
    wf = builder().build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), clock=clock
    )
    async with wf:
        task = asyncio.create_task(wf.schedule("andrew", "@monthly"))
        await run_until_idle(wf)
        assert wf.states()["andrew-scheduler-@monthly"] is State.RUNNING
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert wf.states()["andrew-scheduler-@monthly"] is State.SHUTDOWN


async def test_bad_spec_and_not_running_are_errors() -> None:
    wf = builder().build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    with pytest.raises(NotRunning, match=r"cannot schedule: workflow .* is not running"):
        await wf.schedule("andrew", "@monthly")
    async with wf:
        with pytest.raises(InvalidSchedule):
            await wf.schedule("andrew", "every tuesday")
        with pytest.raises(InvalidSchedule):
            await wf.schedule("andrew", "@every 0s")
        with pytest.raises(ValueError, match="invalid cron"):
            await wf.schedule("andrew", "61 * * * *")


async def test_a_schedule_returns_normally_when_the_workflow_stops() -> None:
    # Given a running schedule, awaited by a caller that is never cancelled
    clock = FakeClock(datetime(2024, 4, 9, 8, 30, tzinfo=UTC))
    wf = builder().build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), clock=clock
    )
    await wf.run()
    caller = asyncio.create_task(wf.schedule("andrew", "@hourly"))
    await run_until_idle(wf)
    assert not caller.done()
    # When the workflow stops
    await wf.stop()
    # Then the caller's await returns None instead of raising CancelledError
    async with asyncio.timeout(5):
        await caller
    assert not caller.cancelled()
    assert caller.exception() is None


async def test_cancelling_the_caller_of_a_schedule_ends_it_with_cancelled_error() -> None:
    # Given a running schedule
    clock = FakeClock(datetime(2024, 4, 9, 8, 30, tzinfo=UTC))
    wf = builder().build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), clock=clock
    )
    async with wf:
        caller = asyncio.create_task(wf.schedule("andrew", "@hourly"))
        await run_until_idle(wf)
        # When its caller is cancelled
        caller.cancel()
        # Then the cancellation reaches the caller, and the schedule's process is gone
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert wf.states()["andrew-scheduler-@hourly"] is State.SHUTDOWN
