"""examples/schedule.py under a fake clock: one report per weekday at 02:00 London time,
none on Saturday or Sunday."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import schedule
from schedule import FOREIGN_ID, Report

from conveyor.testing import FakeClock, run_until_idle


async def test_a_report_runs_at_each_weekday_slot_and_skips_the_weekend() -> None:
    clock = FakeClock(datetime(2024, 1, 4, 12, 0, tzinfo=UTC))  # Thursday noon
    wf = schedule.build(clock)
    async with wf, asyncio.timeout(10):
        task = asyncio.create_task(schedule.schedule(wf))
        try:
            await run_until_idle(wf)
            assert await wf.list_runs(FOREIGN_ID) == []  # nothing before the first slot
            assert clock.next_deadline() == datetime(2024, 1, 5, 2, 0, tzinfo=UTC)

            for day in (5, 6, 7, 8):  # Fri, Sat, Sun, Mon (winter: London is UTC)
                clock.set(datetime(2024, 1, day, 2, 0, tzinfo=UTC))
                await run_until_idle(wf)

            runs = await wf.list_runs(FOREIGN_ID)
            assert [r.created_at.day for r in runs] == [5, 8]
            for record in runs:
                done = await wf.wait(FOREIGN_ID, record.run_id, Report.PUBLISHED)
                assert done.object.day == record.created_at.date().isoformat()
        finally:
            task.cancel()
            await asyncio.wait({task})  # the schedule has ended
