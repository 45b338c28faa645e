"""A role handed over to a joining member finishes the work in hand first.

When a second member joins, roles are spread again and the first member gives some up.
A step already running under such a role (here a plain ``def`` step blocked in its
thread) completes, its result is written, and only then does the role move: no step
runs twice.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import conveyor
from conveyor import Builder, Run
from conveyor.adapters.sqlite import SQLiteRoleScheduler

BOUND = 30.0


class Status(enum.IntEnum):
    UNKNOWN = 0
    NEW = 1
    DONE = 2


@dataclass
class Job:
    n: int = 0


async def until(check: Callable[[], bool]) -> None:
    """Return once ``check()`` holds (looked at every 10 ms; callers bound the wait)."""
    while True:
        if check():
            return
        await asyncio.sleep(0.01)


async def test_a_handed_over_role_finishes_its_running_steps_first(tmp_path: Path) -> None:
    gate = threading.Event()
    executions: list[str] = []

    def work(run: Run[Job, Status]) -> Status:
        executions.append(run.foreign_id)
        if not gate.wait(BOUND):
            raise TimeoutError("the gate never opened")
        return Status.DONE

    b = Builder("handover", Job, Status)
    b.add_step(Status.NEW, work, Status.DONE).with_options(parallel_count=8)
    url = f"sqlite:///{tmp_path / 'handover.db'}"
    async with conveyor.connect(url) as one, conveyor.connect(url) as two:
        first = b.build(one.streamer, one.record_store, one.role_scheduler)
        second = b.build(two.streamer, two.record_store, two.role_scheduler)
        roles = one.role_scheduler
        assert isinstance(roles, SQLiteRoleScheduler)
        async with first, asyncio.timeout(BOUND):
            # Given one member that holds every role and runs 16 blocked steps
            every_role = len(first.process_names())
            await until(lambda: len(roles.held_roles()) == every_role)
            ids = [await first.trigger(f"job-{i}") for i in range(16)]
            await until(lambda: len(executions) == 16)
            # When a second member joins and the first gives some roles up
            async with second:
                await until(lambda: len(roles.held_roles()) < every_role)
                gate.set()
                # Then every run completes, and no step ran twice
                for i, run_id in enumerate(ids):
                    done = await first.wait(f"job-{i}", run_id, Status.DONE)
                    assert done.meta.version == 2
    assert sorted(executions) == sorted(f"job-{i}" for i in range(16))
