"""A daily report: a run at 02:00 every weekday, from a cron spec.

    PENDING --generate--> GENERATED --publish--> PUBLISHED

The port of luno/workflow's ``_examples/schedule``. ``wf.schedule(foreign_id, spec)`` triggers
a run for the foreign ID at every slot of the spec (here ``0 2 * * *`` in London time) and
blocks; cancel its task to stop it. ``filter`` skips slots (here Saturdays and Sundays). The
schedule holds a role of its own, so when every instance calls it, one fires each slot.

``main`` runs four days under a ``FakeClock``, so it finishes in milliseconds;
``tests/examples/test_example_schedule.py`` checks the slots the same way.
"""

import asyncio
import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from conveyor import Builder, Clock, Run, Workflow
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)
from conveyor.testing import FakeClock, run_until_idle

SPEC = "0 2 * * *"
LONDON = ZoneInfo("Europe/London")
FOREIGN_ID = "daily-report"


class Report(enum.IntEnum):
    UNKNOWN = 0
    PENDING = 1
    GENERATED = 2
    PUBLISHED = 3


@dataclass
class Summary:
    day: str = ""
    lines: int = 0


async def generate(run: Run[Summary, Report]) -> Report:
    run.object.day = run.created_at.astimezone(LONDON).date().isoformat()
    run.object.lines = 42
    return Report.GENERATED


async def publish(run: Run[Summary, Report]) -> Report:
    return Report.PUBLISHED


def weekdays_only(slot: datetime) -> bool:
    return slot.astimezone(LONDON).weekday() < 5


def builder() -> Builder[Summary, Report]:
    b = Builder("daily report", Summary, Report)
    b.add_step(Report.PENDING, generate, Report.GENERATED)
    b.add_step(Report.GENERATED, publish, Report.PUBLISHED)
    return b


def build(clock: Clock | None = None) -> Workflow[Summary, Report]:
    return builder().build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), clock=clock
    )


async def schedule(wf: Workflow[Summary, Report]) -> None:
    """What a service runs beside its workflow (as a task it cancels at shutdown)."""
    await wf.schedule(FOREIGN_ID, SPEC, tz=LONDON, filter=weekdays_only)


async def main() -> None:
    clock = FakeClock(datetime(2024, 1, 4, 12, 0, tzinfo=UTC))  # a Thursday
    wf = build(clock)
    async with wf, asyncio.timeout(5):
        task = asyncio.create_task(schedule(wf))
        for day in (5, 6, 7, 8):  # Friday, Saturday and Sunday (skipped), Monday
            await run_until_idle(wf)  # the schedule sleeps until its next slot
            clock.set(datetime(2024, 1, day, 2, 0, tzinfo=UTC))
            await run_until_idle(wf)
        for record in await wf.list_runs(FOREIGN_ID):
            run = await wf.wait(FOREIGN_ID, record.run_id, Report.PUBLISHED)
            print(f"report for {run.object.day}: {run.status.name}, {run.object.lines} lines")
        task.cancel()  # ends the schedule
        await asyncio.wait({task})


if __name__ == "__main__":
    asyncio.run(main())
