"""A worker process for the crash-safety tests: runs a 3-step workflow on a backend URL.

Every step execution appends ``step run_id status version pid ns`` to this process's
journal file before it returns (flushed, so it survives SIGKILL), and records the pid in
the object, so the committed execution of each step can be told from the ones that never
committed. Every lease lost while held (a hand-over to another worker) appends ``lost
role pid ns`` when its block exits, before another worker can take the role. ``ns`` is
``time.monotonic_ns()``, one clock for every process of the machine.

    python -m tests.integration._crash_worker URL JOURNAL_DIR [OPTIONS_JSON]

Prints ``ready`` once running; stops when stdin closes.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import conveyor
from conveyor import Builder, Options, Run
from conveyor.abc import Lease, RoleScheduler


class Step(enum.IntEnum):
    UNKNOWN = 0
    RECEIVED = 1
    CHECKED = 2
    PACKED = 3
    SENT = 4


@dataclass
class Parcel:
    committed_by: list[int] = field(default_factory=list)


def builder(journal: Any) -> Builder[Parcel, Step]:
    def step(to: Step) -> Any:
        async def run(r: Run[Parcel, Step]) -> Step:
            stamp = time.monotonic_ns()
            journal.write(f"step {r.run_id} {int(r.status)} {r.version} {os.getpid()} {stamp}\n")
            journal.flush()
            await asyncio.sleep(0)  # let other work interleave, as real I/O would
            r.object.committed_by.append(os.getpid())
            return to

        return run

    b = Builder("crash test", Parcel, Step)
    b.add_step(Step.RECEIVED, step(Step.CHECKED), Step.CHECKED).with_options(parallel_count=3)
    b.add_step(Step.CHECKED, step(Step.PACKED), Step.PACKED).with_options(parallel_count=2)
    b.add_step(Step.PACKED, step(Step.SENT), Step.SENT)
    return b


class JournaledRoles:
    """The backend's role scheduler, journaling every lease lost while held."""

    def __init__(self, inner: RoleScheduler, journal: Any) -> None:
        self.inner = inner
        self.journal = journal

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[Lease]:
        async with self.inner.hold(role) as lease:
            try:
                yield lease
            finally:
                if lease.lost():
                    self.journal.write(f"lost {role} {os.getpid()} {time.monotonic_ns()}\n")
                    self.journal.flush()

    async def close(self) -> None:
        await self.inner.close()


async def main(url: str, journal_dir: Path, options: dict[str, Any]) -> None:
    with (journal_dir / f"journal-{os.getpid()}.txt").open("a", buffering=1) as journal:
        async with conveyor.connect(url, **options) as backend:
            wf = builder(journal).build(
                backend.streamer,
                backend.record_store,
                JournaledRoles(backend.role_scheduler, journal),
                timeout_store=backend.timeout_store,
                default_options=Options(err_backoff=0.05),
                pause_retry=None,
            )
            async with wf:
                print("ready", flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    opts = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), opts))
