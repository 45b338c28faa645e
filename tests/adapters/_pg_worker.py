"""A worker process of the many-processes test: a three-step workflow with
``parallel_count=4`` on ``conveyor.connect(url)``, journaling what it does.

    python _pg_worker.py <url> <journal schema>

Prints ``ready`` once running. Reading ``go <n> <prefix>`` from stdin triggers ``n`` runs
(foreign IDs ``<prefix>-<i>``) and prints ``triggered``; end of stdin stops it.

Journals, in ``<journal schema>``: every step execution as it starts (run ID, status,
version, process ID) in ``steps``, and every role it holds (acquired and left, by the
database's clock) in ``roles``.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg

import conveyor
from conveyor import Builder, Run, Workflow
from conveyor.abc import Lease, RoleScheduler

PID = os.getpid()


class Status(enum.IntEnum):
    UNKNOWN = 0
    CREATED = 1
    CHECKED = 2
    PACKED = 3
    SHIPPED = 4


class Journal:
    """Writes the journal rows (autocommit: an attempt is journaled even if it never commits)."""

    def __init__(self, pool: asyncpg.Pool[Any], schema: str) -> None:
        self.pool = pool
        self.steps = f'"{schema}".steps'
        self.roles = f'"{schema}".roles'

    async def step(self, run: Run[dict[str, Any], Status]) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.steps} (run_id, status, version, pid) VALUES ($1, $2, $3, $4)",
            run.run_id,
            int(run.status),
            run.meta.version,
            PID,
        )

    async def role(self, role: str, event: str) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.roles} (role, event, pid) VALUES ($1, $2, $3)", role, event, PID
        )


class JournaledRoles:
    """The backend's role scheduler, journaling each hold from acquisition to exit."""

    def __init__(self, inner: RoleScheduler, journal: Journal) -> None:
        self.inner = inner
        self.journal = journal

    def hold(self, role: str) -> AbstractAsyncContextManager[Lease]:
        return self._hold(role)

    async def close(self) -> None:
        await self.inner.close()

    @asynccontextmanager
    async def _hold(self, role: str) -> AsyncIterator[Lease]:
        async with self.inner.hold(role) as lease:
            try:
                await self.journal.role(role, "acquired")
                yield lease
            finally:
                why = getattr(lease, "reason", "") if lease.lost() else "exited"
                await asyncio.shield(self.journal.role(role, f"left: {why}"))


def build(backend: conveyor.Backend, journal: Journal) -> Workflow[dict[str, Any], Status]:
    def step(to: Status) -> Any:
        async def run_step(run: Run[dict[str, Any], Status]) -> Status:
            await journal.step(run)
            await asyncio.sleep(0.005)  # some work: a kill can land in the middle of it
            run.object[to.name.lower()] = PID
            return to

        return run_step

    b = Builder("many processes", dict, Status)
    for start, end in zip(list(Status)[1:], list(Status)[2:], strict=False):
        b.add_step(start, step(end), end).with_options(parallel_count=4)
    return b.build(
        backend.streamer,
        backend.record_store,
        JournaledRoles(backend.role_scheduler, journal),
        timeout_store=backend.timeout_store,
    )


async def main(url: str, journal_schema: str) -> None:
    loop = asyncio.get_running_loop()
    pool = await asyncpg.create_pool(url.split("?")[0], min_size=1, max_size=4)
    journal = Journal(pool, journal_schema)
    async with conveyor.connect(url) as backend:
        wf = build(backend, journal)
        async with wf:
            print("ready", flush=True)
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    break
                _, count, prefix = line.split()
                for start in range(0, int(count), 50):
                    await asyncio.gather(
                        *(
                            wf.trigger(f"{prefix}-{i}")
                            for i in range(start, min(int(count), start + 50))
                        )
                    )
                print("triggered", flush=True)
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
