"""A step that blocks the event loop longer than its lease completes once, and the
watchdog says where the loop was blocked.

On SQLite with one-second leases, an ``async def`` step calls ``time.sleep`` (the common
mistake) for longer than the lease: the lease lapses while nothing can renew it. When the
loop turns again the attempt is not thrown away: it finishes and its write commits (no one
else moved the run), so the step runs exactly once, and the runs behind it complete.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from pathlib import Path

import conveyor
from conveyor import Builder, Run, RunState
from conveyor.testing import run_until_idle

BOUND = 30.0


class Status(enum.IntEnum):
    UNKNOWN = 0
    NEW = 1
    DONE = 2


@dataclass
class Job:
    n: int = 0


class Log:
    def __init__(self) -> None:
        self.errors: list[tuple[str, dict[str, object]]] = []

    def debug(self, msg: str, **meta: object) -> None: ...

    def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
        self.errors.append((msg, meta))


async def test_a_step_blocking_the_loop_past_its_lease_completes_once(tmp_path: Path) -> None:
    executions: list[str] = []

    async def blocks_the_loop(run: Run[Job, Status]) -> Status:
        executions.append(run.foreign_id)
        if run.foreign_id == "blocker":
            time.sleep(1.6)  # noqa: ASYNC251 - the mistake under test
            await asyncio.sleep(0.05)  # the step goes on (an HTTP call, say) after it
        return Status.DONE

    b = Builder("blocked", Job, Status)
    b.add_step(Status.NEW, blocks_the_loop, Status.DONE)
    log = Log()
    url = f"sqlite:///{tmp_path / 'blocked.db'}?lease_ttl=1"
    async with conveyor.connect(url) as backend:
        wf = b.build(
            backend.streamer,
            backend.record_store,
            backend.role_scheduler,
            logger=log,
            stall_threshold=0.3,
        )
        async with wf, asyncio.timeout(BOUND):
            blocker = await wf.trigger("blocker")
            others = [await wf.trigger(f"o-{i}") for i in range(20)]
            done = await wf.wait("blocker", blocker, Status.DONE)
            for i, rid in enumerate(others):
                await wf.wait(f"o-{i}", rid, Status.DONE)
            await run_until_idle(wf, timeout=BOUND)
    assert done.run_state is RunState.COMPLETED
    assert done.meta.version == 2
    assert executions.count("blocker") == 1
    assert sorted(executions) == sorted(["blocker", *(f"o-{i}" for i in range(20))])
    stalls = [meta for msg, meta in log.errors if "event loop has not turned" in msg]
    assert stalls, log.errors
    assert "blocks_the_loop" in str(stalls[0]["blocked_in"])
    over = [msg for msg, _ in log.errors if "the event loop was blocked for" in msg]
    assert over, log.errors
