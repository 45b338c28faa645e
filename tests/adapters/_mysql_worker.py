"""A worker process of the MySQL many-processes tests: a three-step workflow with
``parallel_count=3`` on ``conveyor.connect(url)`` (records, events, roles and timeouts all
on MySQL), journaling what it does.

    python _mysql_worker.py <url> <journal table prefix, or - for none> [<step seconds>]

Prints ``ready`` once running. Reading ``go <n> <prefix>`` from stdin triggers ``n`` runs
(foreign IDs ``<prefix>-<i>``) and prints ``triggered <n>``; end of stdin stops it (exit
code 0 once everything is closed; a stop that takes over ``STUCK`` seconds prints the
stacks of the tasks left to stderr).

Journal (autocommit, on a connection pool of its own, so an attempt is journaled even if
its write never commits), in tables ``<journal>steps`` and ``<journal>roles``:

- ``steps``: every step attempt as it starts, before the step's body: run ID, the version
  it saw, status, process ID and an *attempt token* ``<pid>.<n>``, unique per attempt;
- ``roles``: every role held, acquired and left, by the database's clock.

Each step puts its attempt token in the run's object (``attempt``), so the write that
commits an attempt carries it, and the tests' log of record writes (triggers on the
records table, or its system-versioned history) has it from the write's own transaction:
an attempt is committed exactly when a logged write carries its token, and
started-but-not-committed when only its ``steps`` row exists.

Triggering survives dropped connections (the recovery test kills them): when a trigger
fails with ``AdapterUnavailable`` its write may or may not have committed, so the run is
looked up by foreign ID before it is tried again.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncmy

import conveyor
from conveyor import Builder, Run, Workflow
from conveyor.abc import Lease, RoleScheduler

PID = os.getpid()
PARALLEL = 3
ERR_BACKOFF = 0.05
"""Seconds a step's consumer backs off after an error (doubling while errors go on)."""
STUCK = 10.0
"""Seconds after the end of stdin after which a worker still stopping prints its tasks."""
_attempts = itertools.count(1)


class Status(enum.IntEnum):
    UNKNOWN = 0
    CREATED = 1
    CHECKED = 2
    PACKED = 3
    SHIPPED = 4


class Journal:
    """Writes the journal rows on a pool of its own (autocommit)."""

    def __init__(self, pool: Any, prefix: str) -> None:
        self.pool = pool
        self.steps = f"`{prefix}steps`"
        self.roles = f"`{prefix}roles`"

    async def _insert(self, sql: str, args: tuple[object, ...]) -> None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(sql, args)

    async def step(self, run: Run[dict[str, Any], Status], attempt: str) -> None:
        await self._insert(
            f"INSERT INTO {self.steps} (run_id, status, version, pid, attempt, at) "
            "VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
            (run.run_id, int(run.status), run.meta.version, PID, attempt),
        )

    async def role(self, role: str, event: str) -> None:
        await self._insert(
            f"INSERT INTO {self.roles} (role, event, pid, at) "
            "VALUES (%s, %s, %s, UTC_TIMESTAMP(6))",
            (role, event, PID),
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


def build(
    backend: conveyor.Backend, journal: Journal | None, work: float
) -> Workflow[dict[str, Any], Status]:
    def step(to: Status) -> Any:
        async def run_step(run: Run[dict[str, Any], Status]) -> Status:
            attempt = f"{PID}.{next(_attempts)}"
            if journal is not None:
                await journal.step(run, attempt)  # started
            await asyncio.sleep(work)  # some work: a kill can land in the middle of it
            run.object[to.name.lower()] = PID
            run.object["attempt"] = attempt  # committed when a write carries it
            return to

        return run_step

    b = Builder("mysql processes", dict, Status)
    for start, end in itertools.pairwise(list(Status)[1:]):
        # A short backoff: a process whose connection was killed tries again soon, so
        # the recovery test's kills keep landing while runs are in flight
        b.add_step(start, step(end), end).with_options(
            parallel_count=PARALLEL, err_backoff=ERR_BACKOFF
        )
    roles: RoleScheduler = backend.role_scheduler
    if journal is not None:
        roles = JournaledRoles(roles, journal)
    return b.build(
        backend.streamer, backend.record_store, roles, timeout_store=backend.timeout_store
    )


async def trigger(wf: Workflow[dict[str, Any], Status], store: Any, foreign_id: str) -> str:
    """Trigger ``foreign_id`` once, whatever happens to the connections meanwhile."""
    for _ in range(50):
        try:
            return await wf.trigger(foreign_id)
        except conveyor.WorkflowInProgress:
            pass  # an earlier attempt committed after all
        except conveyor.AdapterUnavailable:
            pass  # committed or not: look
        try:
            return str((await store.latest(wf.name, foreign_id)).run_id)
        except (conveyor.RecordNotFound, conveyor.AdapterUnavailable):
            continue
    raise RuntimeError(f"could not trigger {foreign_id}")


def _dump_tasks() -> None:
    """Print every task's stack to stderr (the stop is taking too long)."""
    print(f"still stopping after {STUCK} s; tasks:", file=sys.stderr)
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


async def main(url: str, journal_prefix: str, work: float) -> None:
    loop = asyncio.get_running_loop()
    pool = None
    journal = None
    if journal_prefix != "-":
        parts = urlsplit(url)
        pool = await asyncmy.create_pool(
            minsize=1,
            maxsize=PARALLEL * 3,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            database=parts.path.lstrip("/"),
            autocommit=True,
        )
        journal = Journal(pool, journal_prefix)
    async with conveyor.connect(url) as backend:
        wf = build(backend, journal, work)
        async with wf:
            print("ready", flush=True)
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    loop.call_later(STUCK, _dump_tasks)
                    break
                _, count, prefix = line.split()
                n = int(count)
                for start in range(0, n, 50):
                    await asyncio.gather(
                        *(
                            trigger(wf, backend.record_store, f"{prefix}-{i}")
                            for i in range(start, min(n, start + 50))
                        )
                    )
                print(f"triggered {n}", flush=True)
    if pool is not None:
        pool.close()
        await pool.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.005))
