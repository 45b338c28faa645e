"""A worker process of the broker many-processes tests (``test_broker_workers.py``): a
three-step workflow with ``parallel_count=3`` on a mixed deployment, records (and their
outbox) on PostgreSQL, events and roles on brokers, journaling what it does.

    python _broker_worker.py <records URL> <events URL> <roles URL> <journal schema> \
        [<step seconds> [serial]]

opens ``conveyor.connect(records, events=events, roles=roles)``. Prints ``ready`` once
running. Each step sleeps ``<step seconds>`` (0.005 by default); the steps of a batch run
concurrently, as the engine runs them, unless ``serial`` is given: then the process runs
one step at a time (each journaled once it has its turn). Reads commands from stdin, one
a line:

- ``go <n> <prefix>`` triggers ``n`` runs (foreign IDs ``<prefix>-<i>``) and prints
  ``triggered <n>``;
- ``drop`` (events on NATS or RabbitMQ) drops the client's TCP connection to the server
  from this side, as a network failure would (``shutdown(SHUT_RDWR)`` of the client's
  socket: the NATS client sees the connection end and reconnects by itself; the RabbitMQ
  receivers fail and the engine opens them again on a new connection), waits for the
  client to reconnect and prints ``reconnected after <seconds> s``.
  The Redis tests drop connections from the server side instead (``CLIENT KILL``).

End of stdin stops it (exit code 0 once everything is closed; a stop that takes over
``STUCK`` seconds prints the stacks of the tasks left to stderr).

Journal (autocommit, on an asyncpg pool of its own, so an attempt is journaled even if its
write never commits), in ``<journal schema>``:

- ``steps``: every step attempt as it starts, before the step's body: run ID, the version
  it saw, status, process ID and an *attempt token* ``<pid>.<n>``, unique per attempt;
- ``roles``: every role held, acquired and left, by the database's clock.

Each step puts its attempt token in the run's object (``attempt``), so the write that
commits an attempt carries it, and the test's trigger on the records table logs it from
the write's own transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg

import conveyor
from conveyor import Builder, Run, Workflow
from conveyor.abc import Lease, RoleScheduler

PID = os.getpid()
PARALLEL = 3
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

    def __init__(self, pool: asyncpg.Pool[Any], schema: str) -> None:
        self.pool = pool
        self.steps = f'"{schema}".steps'
        self.roles = f'"{schema}".roles'

    async def step(self, run: Run[dict[str, Any], Status], attempt: str) -> None:
        await self.pool.execute(
            f"INSERT INTO {self.steps} (run_id, status, version, pid, attempt) "
            "VALUES ($1, $2, $3, $4, $5)",
            run.run_id,
            int(run.status),
            run.meta.version,
            PID,
            attempt,
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


def build(
    backend: conveyor.Backend, journal: Journal, work: float, serial: bool
) -> Workflow[dict[str, Any], Status]:
    turn: AbstractAsyncContextManager[Any] = asyncio.Lock() if serial else contextlib.nullcontext()

    def step(to: Status) -> Any:
        async def run_step(run: Run[dict[str, Any], Status]) -> Status:
            async with turn:
                attempt = f"{PID}.{next(_attempts)}"
                await journal.step(run, attempt)  # started
                await asyncio.sleep(work)  # some work: a kill can land in the middle of it
            run.object[to.name.lower()] = PID
            run.object["attempt"] = attempt  # committed when a write carries it
            return to

        return run_step

    b = Builder("broker processes", dict, Status)
    for start, end in itertools.pairwise(list(Status)[1:]):
        b.add_step(start, step(end), end).with_options(parallel_count=PARALLEL)
    return b.build(
        backend.streamer,
        backend.record_store,
        JournaledRoles(backend.role_scheduler, journal),
        timeout_store=backend.timeout_store,
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


async def drop_nats(backend: conveyor.Backend) -> float:
    """Shut the NATS client's socket down under it (a test-only failure, see the module)
    and wait for the client to reconnect: how many seconds that took."""
    connection = getattr(backend.streamer, "connection", None)
    if connection is None:
        raise RuntimeError(f"events are not on NATS: {backend.streamer!r}")
    back = asyncio.Event()

    async def reconnected() -> None:
        back.set()

    connection.on_reconnect(reconnected)
    try:
        nc, _ = await connection.client()
        writer = nc._transport._io_writer  # nats-py 2.x's TcpTransport
        sock: socket.socket = writer.transport.get_extra_info("socket")
        started = time.monotonic()
        sock.shutdown(socket.SHUT_RDWR)
        async with asyncio.timeout(STUCK):
            await back.wait()
        return time.monotonic() - started
    finally:
        connection.remove_reconnect_hook(reconnected)


async def drop_rabbitmq(backend: conveyor.Backend) -> float:
    """Shut the RabbitMQ stream connection's socket down under it, wait until the client
    sees it lost and a new one is open (the receivers fail and the engine opens them again
    on it): how many seconds that took."""
    from conveyor.adapters.rabbitmq import RabbitEventStreamer

    streamer = backend.streamer
    if not isinstance(streamer, RabbitEventStreamer):
        raise RuntimeError(f"events are not on RabbitMQ: {streamer!r}")
    connection = streamer.connection
    clients = [await connection.client(publishing=p) for p in (False, True)]
    started = time.monotonic()
    for old in clients:
        transport = old._protocol.transport
        assert transport is not None
        sock: socket.socket = transport.get_extra_info("socket")
        sock.shutdown(socket.SHUT_RDWR)
    async with asyncio.timeout(STUCK):
        for old in clients:
            await old.wait_lost()
        await connection.client()
    return time.monotonic() - started


def _dump_tasks() -> None:
    """Print every task's stack to stderr (the stop is taking too long)."""
    print(f"still stopping after {STUCK} s; tasks:", file=sys.stderr)
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


async def main(
    records: str, events: str, roles: str, journal_schema: str, work: float, serial: bool
) -> None:
    loop = asyncio.get_running_loop()
    pool = await asyncpg.create_pool(records.split("?")[0], min_size=1, max_size=PARALLEL * 3)
    journal = Journal(pool, journal_schema)
    async with conveyor.connect(records, events=events, roles=roles) as backend:
        wf = build(backend, journal, work, serial)
        async with wf:
            print("ready", flush=True)
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    loop.call_later(STUCK, _dump_tasks)
                    break
                command, *args = line.split()
                if command == "drop":
                    rabbit = events.startswith("rabbitmq-stream:")
                    took = await (drop_rabbitmq(backend) if rabbit else drop_nats(backend))
                    print(f"reconnected after {took:.2f} s", flush=True)
                    continue
                count, prefix = args
                n = int(count)
                for start in range(0, n, 50):
                    await asyncio.gather(
                        *(
                            trigger(wf, backend.record_store, f"{prefix}-{i}")
                            for i in range(start, min(n, start + 50))
                        )
                    )
                print(f"triggered {n}", flush=True)
    await pool.close()


if __name__ == "__main__":
    records, events, roles, journal = sys.argv[1:5]
    work = float(sys.argv[5]) if len(sys.argv) > 5 else 0.005
    serial = sys.argv[6:7] == ["serial"]
    asyncio.run(main(records, events, roles, journal, work, serial))
