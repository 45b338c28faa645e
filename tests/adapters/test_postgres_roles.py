"""PostgreSQL role leases: takeover from dead or frozen holders, surviving dropped
connections, and spreading roles over live processes.

Holders that must die are real processes (``_pg_role_holder.py``); in-process schedulers
each get their own ``PostgresDatabase``, as separate processes would. Timings are the
tests' quick ones (``FAST_ROLES``: TTL 3 s, renewal every 0.25 s). Nothing here shows that
a role was *not* taken by waiting a while: the waiter's own rounds, seen in the members
table, or the expiry of a lease, seen by the database's clock, mark when it could have been.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path

import pytest
from _pg_support import FAST_ROLES, migrated, open_database, pg_url

from conveyor.adapters.postgres import PostgresDatabase, PostgresRoleScheduler, assign_roles
from conveyor.adaptertest import new_name

__all__ = ["pg_url"]

SCHEMA = "role_tests"
TTL, RENEW = FAST_ROLES["role_ttl"], FAST_ROLES["role_renew"]
HOLDER = Path(__file__).with_name("_pg_role_holder.py")


class Holder:
    """A role holder in its own process."""

    def __init__(self, url: str, role: str) -> None:
        query = "&".join(f"{k}={v}" for k, v in FAST_ROLES.items())
        self.proc = subprocess.Popen(
            [sys.executable, str(HOLDER), f"{url}?schema={SCHEMA}&{query}", role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def line(self, timeout: float = 15.0) -> str:
        assert self.proc.stdout is not None
        read = asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        return (await asyncio.wait_for(read, timeout)).strip()

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
async def schedulers(
    pg_url: str,
) -> AsyncIterator[Callable[[], asyncio.Future[PostgresRoleScheduler]]]:
    """``await make()``: a scheduler with its own database connections (a "process")."""
    await migrated(pg_url, SCHEMA)
    async with AsyncExitStack() as stack:

        async def make() -> PostgresRoleScheduler:
            db = await stack.enter_async_context(open_database(pg_url, SCHEMA, **FAST_ROLES))
            scheduler = PostgresRoleScheduler(db)
            stack.push_async_callback(scheduler.close)
            return scheduler

        yield lambda: asyncio.ensure_future(make())


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[PostgresDatabase]:
    """The test's own connections, to look at the role tables."""
    async with open_database(pg_url, SCHEMA) as database:
        yield database


@pytest.fixture
async def holder(pg_url: str) -> AsyncIterator[Callable[[str], Holder]]:
    await migrated(pg_url, SCHEMA)
    started: list[Holder] = []

    def start(role: str) -> Holder:
        h = Holder(pg_url, role)
        started.append(h)
        return h

    yield start
    for h in started:
        h.end()


class Waiter:
    """A task here that waits for ``role`` and then holds it until cancelled."""

    def __init__(self, scheduler: PostgresRoleScheduler, role: str) -> None:
        self.got = asyncio.Event()
        self._task = asyncio.create_task(self._hold(scheduler, role))

    async def _hold(self, scheduler: PostgresRoleScheduler, role: str) -> None:
        async with scheduler.hold(role):
            self.got.set()
            await asyncio.Event().wait()

    async def acquired(self, timeout: float) -> None:
        """Return once the role is held here; ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self.got.wait()

    def cancel(self) -> None:
        self._task.cancel()


async def _rounds(
    db: PostgresDatabase, scheduler: PostgresRoleScheduler, role: str, n: int
) -> None:
    """Return once ``scheduler`` has had ``n`` rounds wanting ``role``.

    Each round renews the member's row (a new ``expires_at``) in the statement that reads
    the roles, and any take it decides on follows before the next round starts: after two
    rounds, the first one's take (if any) is done. Polled: rounds leave no other trace.
    """
    seen: set[datetime] = set()
    async with asyncio.timeout(10 * n * RENEW + 5.0):
        while len(seen) < n:
            row = await db.fetchrow(
                "test",
                f"SELECT expires_at FROM {db.tables.members} WHERE id = $1 AND $2 = ANY(wanted)",
                scheduler.member_id,
                role,
            )
            if row is not None:
                seen.add(row[0])
            await asyncio.sleep(RENEW / 5)


async def _lease(db: PostgresDatabase, role: str) -> tuple[str, datetime]:
    """The role's holder and the expiry of its lease, as the table has them."""
    row = await db.fetchrow(
        "test", f"SELECT holder, expires_at FROM {db.tables.roles} WHERE role = $1", role
    )
    assert row is not None, f"no row for {role}"
    return row[0], row[1]


async def _database_clock_passes(db: PostgresDatabase, moment: datetime) -> None:
    """Return once the database's ``now()`` is past ``moment`` (polled)."""
    async with asyncio.timeout(TTL + 10.0):
        while True:
            row = await db.fetchrow("test", "SELECT now() > $1", moment)
            if row is not None and row[0]:
                return
            await asyncio.sleep(RENEW / 5)


@pytest.mark.postgres
@pytest.mark.processes
async def test_a_killed_holders_role_is_taken_over_once_its_lease_expires(
    db: PostgresDatabase,
    schedulers: Callable[[], asyncio.Future[PostgresRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process, and a scheduler here that wants it and has
    # had two rounds without taking it
    role = new_name("killed")
    other = holder(role)
    assert (await other.line()).startswith("held")
    scheduler = await schedulers()
    waiter = Waiter(scheduler, role)
    await _rounds(db, scheduler, role, 2)
    assert not waiter.got.is_set(), "the role was taken from a live holder"

    # When the holder is killed
    other.proc.send_signal(signal.SIGKILL)
    other.proc.wait(5)

    # Then the role is taken over once the lease has expired, at most TTL + one renewal
    # later. The bound is twice that: it tells "at the first expiry" from "never" without
    # timing the expected 3 s.
    await waiter.acquired(2 * (TTL + RENEW))
    waiter.cancel()


@pytest.mark.postgres
@pytest.mark.processes
async def test_a_frozen_holder_loses_its_lease_before_the_takeover(
    schedulers: Callable[[], asyncio.Future[PostgresRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process
    role = new_name("frozen")
    other = holder(role)
    assert (await other.line()).startswith("held")
    waiter = Waiter(await schedulers(), role)

    # When that process is frozen (as by a long pause or a partition) past the TTL
    other.proc.send_signal(signal.SIGSTOP)
    try:
        await waiter.acquired(TTL + RENEW + 5.0)
    finally:
        other.proc.send_signal(signal.SIGCONT)

    # Then, thawed, it reports the lease lost (its deadline passed before the row expired)
    line = await other.line()
    waiter.cancel()
    assert line.startswith("lost"), line


@pytest.mark.postgres
@pytest.mark.processes
async def test_dropped_connections_cost_no_role(
    pg_url: str,
    db: PostgresDatabase,
    schedulers: Callable[[], asyncio.Future[PostgresRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process and a waiter here
    role = new_name("dropped")
    other = holder(role)
    assert (await other.line()).startswith("held")
    scheduler = await schedulers()
    waiter = Waiter(scheduler, role)
    await _rounds(db, scheduler, role, 1)
    holder_id, expires = await _lease(db, role)

    # When every connection to the database is terminated (as in a server restart)
    async with open_database(pg_url, SCHEMA) as admin, admin.connection("test") as conn:
        dropped = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert dropped >= 3

    # Then nobody loses or steals the role: once the lease in force at the drop has run
    # out by the database's clock, the holder still holds it, renewed through new
    # connections, and the waiter does not
    await _database_clock_passes(db, expires)
    now_held_by, now_expires = await _lease(db, role)
    assert (now_held_by, now_expires > expires) == (holder_id, True), "no renewal after the drop"
    assert not waiter.got.is_set(), "the role was taken from a live holder"
    assert other.proc.poll() is None, "the holder lost its role"

    # And once the holder lets go, the waiter gets it before any lease could have run out
    # (within half the TTL: a hand-over, not an expiry)
    assert other.proc.stdin is not None
    other.proc.stdin.close()
    assert await other.line() == "released"
    await waiter.acquired(TTL / 2)
    waiter.cancel()


@pytest.mark.postgres
async def test_roles_spread_over_live_schedulers_and_follow_them(
    schedulers: Callable[[], asyncio.Future[PostgresRoleScheduler]],
) -> None:
    roles = [new_name(f"shard-{i:02d}") for i in range(12)]
    holding: dict[str, PostgresRoleScheduler] = {}
    changed = asyncio.Event()  # set whenever ``holding`` changes

    async def keep_holding(scheduler: PostgresRoleScheduler, role: str) -> None:
        # What the engine's supervisor does: hold, work until lost, hold again.
        while True:
            async with scheduler.hold(role) as lease:
                holding[role] = scheduler
                changed.set()
                await lease.wait_lost()
                if holding.get(role) is scheduler:
                    del holding[role]
                    changed.set()

    async def spread(members: list[PostgresRoleScheduler], timeout: float = 15.0) -> None:
        """Wait until every role is held by one of ``members``, evenly."""
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                counts = Counter(holding.get(r) for r in roles)
                loads = [counts[m] for m in members]
                if sum(loads) == len(roles) and max(loads) - min(loads) <= 1:
                    return
                await changed.wait()

    tasks: dict[PostgresRoleScheduler, list[asyncio.Task[None]]] = {}

    def join(scheduler: PostgresRoleScheduler) -> None:
        tasks[scheduler] = [asyncio.create_task(keep_holding(scheduler, r)) for r in roles]

    try:
        # Given three processes that all run the same twelve roles
        members = [await schedulers() for _ in range(3)]
        for m in members:
            join(m)
        # Then each holds four
        await spread(members)

        # When a fourth starts, each ends up with three
        members.append(await schedulers())
        join(members[-1])
        await spread(members)

        # When one stops, the other three share its roles again
        gone = members.pop(0)
        stopping = tasks.pop(gone)
        for t in stopping:
            t.cancel()
        await asyncio.wait(stopping)
        await gone.close()
        for r in [r for r, s in holding.items() if s is gone]:
            del holding[r]
        changed.set()
        await spread(members)
    finally:
        for ts in tasks.values():
            for t in ts:
                t.cancel()
        await asyncio.gather(*(t for ts in tasks.values() for t in ts), return_exceptions=True)


def test_the_assignment_is_balanced_and_puts_neighbouring_shards_apart() -> None:
    roles = [f"wf-1-consumer-{i}-of-4" for i in range(1, 5)] + ["wf-outbox-consumer"]
    got = assign_roles({"a": roles, "b": roles, "c": roles[:2]})
    load = Counter(got.values())
    assert max(load.values()) - min(load.values()) <= 1
    shards = [got[r] for r in roles[:4]]
    assert len(set(shards[:3])) == 3, "three neighbouring shards went to fewer members"
    assert assign_roles({"a": roles, "b": roles}) == assign_roles({"b": roles, "a": roles})


def test_the_assignment_leaves_roles_with_their_holders_unless_the_load_is_uneven() -> None:
    roles = [f"role-{i}" for i in range(12)]
    three = assign_roles({m: roles for m in "abc"})
    # Every role stays where it is when nothing changes, whatever the hash prefers.
    assert assign_roles({m: roles for m in "abc"}, three) == three
    # A fourth member takes three roles; only those move.
    four = assign_roles({m: roles for m in "abcd"}, three)
    assert Counter(four.values()) == {"a": 3, "b": 3, "c": 3, "d": 3}
    assert sum(four[r] != three[r] for r in roles) == 3
    # One holder of one role keeps it against a newcomer.
    assert assign_roles({"x": ["only"], "y": ["only"]}, {"only": "y"}) == {"only": "y"}
    assert assign_roles({"x": ["only"], "y": ["only"]}, {"only": "x"}) == {"only": "x"}
