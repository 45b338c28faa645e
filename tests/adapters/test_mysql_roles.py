"""MySQL/MariaDB role leases: the conformance suite, takeover from dead, frozen or cut-off
holders within the documented bound, surviving killed connections, and spreading roles
over live processes.

Holders that must die are real processes (``_mysql_role_holder.py``); in-process
schedulers each get their own ``Database``, as separate processes would. Timings are the
tests' quick ones (``FAST_ROLES``: TTL 3 s, a round every 0.25 s, grace 0.5 s). Nothing
here shows that a role was *not* taken by waiting a while: the waiter's own rounds, seen
in the members table, or the expiry of a lease, seen by the database's clock, mark when
it could have been.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import asyncmy
import pytest
from _mysql_support import FAST_ROLES, admin_sql, mysql_url, open_mysql, with_prefix

from conveyor.abc import RoleScheduler
from conveyor.adapters.mysql import MySQLRoleScheduler, prune_roles
from conveyor.adapters.mysql._database import Database
from conveyor.adapters.mysql._driver import Connection
from conveyor.adaptertest import RoleSchedulerSuite, SchedulerFactory, new_name

__all__ = ["mysql_url"]

pytestmark = pytest.mark.mysql

PREFIX = "roles_"
TTL, RENEW = FAST_ROLES["role_ttl"], FAST_ROLES["role_renew"]
SLACK = 0.5
"""Seconds allowed on top of a bound for the rounds' own time and the event loops' jitter."""
HOLDER = Path(__file__).with_name("_mysql_role_holder.py")


class TestMySQLRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def make_schedulers(self, mysql_url: str) -> AsyncIterator[SchedulerFactory]:
        async with AsyncExitStack() as stack:
            made: list[MySQLRoleScheduler] = []

            async def make(n: int) -> Sequence[RoleScheduler]:
                # One database (pool and connections) per scheduler, as in separate processes.
                for _ in range(n):
                    db = await stack.enter_async_context(
                        open_mysql(mysql_url, PREFIX, **FAST_ROLES)
                    )
                    scheduler = MySQLRoleScheduler(db)
                    stack.push_async_callback(scheduler.close)
                    made.append(scheduler)
                return made[-n:]

            yield make


class Holder:
    """A role holder in its own process."""

    def __init__(self, url: str, role: str) -> None:
        query = "&".join(f"{k}={v}" for k, v in FAST_ROLES.items())
        self.proc = subprocess.Popen(
            [sys.executable, str(HOLDER), f"{with_prefix(url, PREFIX)}&{query}", role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.member_id = ""

    async def line(self, timeout: float = 15.0) -> str:
        assert self.proc.stdout is not None
        read = asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        return (await asyncio.wait_for(read, timeout)).strip()

    async def held(self) -> None:
        """Wait until it holds the role."""
        line = await self.line()
        assert line.startswith("held"), line
        self.member_id = line.split()[2]

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
async def schedulers(
    mysql_url: str,
) -> AsyncIterator[Callable[[], asyncio.Future[MySQLRoleScheduler]]]:
    """``await make()``: a scheduler with its own database connections (a "process")."""
    async with AsyncExitStack() as stack:

        async def make() -> MySQLRoleScheduler:
            db = await stack.enter_async_context(open_mysql(mysql_url, PREFIX, **FAST_ROLES))
            scheduler = MySQLRoleScheduler(db)
            stack.push_async_callback(scheduler.close)
            return scheduler

        yield lambda: asyncio.ensure_future(make())


@pytest.fixture
async def db(mysql_url: str) -> AsyncIterator[Database]:
    """The test's own connections, to look at the role tables."""
    async with open_mysql(mysql_url, PREFIX, **FAST_ROLES) as database:
        yield database


@pytest.fixture
async def holder(mysql_url: str, db: Database) -> AsyncIterator[Callable[[str], Holder]]:
    started: list[Holder] = []

    def start(role: str) -> Holder:
        h = Holder(mysql_url, role)
        started.append(h)
        return h

    yield start
    for h in started:
        h.end()


class Waiter:
    """A task here that waits for ``role`` and then holds it until cancelled."""

    def __init__(self, scheduler: MySQLRoleScheduler, role: str) -> None:
        self.got = asyncio.Event()
        self.at = 0.0
        """``time.monotonic()`` when the role was acquired."""
        self._task = asyncio.create_task(self._hold(scheduler, role))

    async def _hold(self, scheduler: MySQLRoleScheduler, role: str) -> None:
        async with scheduler.hold(role):
            self.at = time.monotonic()
            self.got.set()
            await asyncio.Event().wait()

    async def acquired(self, timeout: float) -> None:
        """Return once the role is held here; ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self.got.wait()

    async def cancel(self) -> None:
        self._task.cancel()
        await asyncio.wait({self._task})


async def _rounds(db: Database, scheduler: MySQLRoleScheduler, role: str, n: int) -> None:
    """Return once ``scheduler`` has had ``n`` rounds wanting ``role``.

    Each round renews the member's row (a new ``expires_at``) before it reads the roles,
    and any take it decides on follows before the next round starts: after two rounds,
    the first one's take (if any) is done. Polled: rounds leave no other trace.
    """
    seen: set[datetime] = set()
    async with asyncio.timeout(10 * n * RENEW + 5.0):
        while len(seen) < n:
            rows = await db.fetch(
                "test",
                f"SELECT expires_at, wanted FROM {db.tables.members} WHERE id = %s",
                (scheduler.member_id,),
            )
            if rows and role in json.loads(rows[0][1]):
                seen.add(rows[0][0])
            await asyncio.sleep(RENEW / 5)


async def _lease(db: Database, role: str) -> tuple[str | None, datetime, int]:
    """The role's holder, the expiry of its lease and its epoch, as the table has them."""
    rows = await db.fetch(
        "test", f"SELECT holder, expires_at, epoch FROM {db.tables.roles} WHERE role = %s", (role,)
    )
    assert rows, f"no row for {role}"
    holder, expires, epoch = rows[0]
    return holder, expires, int(epoch)


async def _database_now(db: Database) -> datetime:
    rows = await db.fetch("test", "SELECT UTC_TIMESTAMP(6)")
    value: datetime = rows[0][0]
    return value


async def _clock_offset(db: Database) -> float:
    """The database's clock (UTC seconds) minus this process's ``time.monotonic()``."""
    before = time.monotonic()
    now = await _database_now(db)
    after = time.monotonic()
    return now.replace(tzinfo=UTC).timestamp() - (before + after) / 2


async def _database_clock_passes(db: Database, moment: datetime) -> None:
    """Return once the database's clock is past ``moment`` (polled)."""
    async with asyncio.timeout(TTL + 10.0):
        while True:
            if await _database_now(db) > moment:
                return
            await asyncio.sleep(RENEW / 5)


@pytest.mark.processes
async def test_a_killed_holders_role_is_taken_over_within_ttl_plus_one_round(
    db: Database,
    schedulers: Callable[[], asyncio.Future[MySQLRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process, and a scheduler here that wants it and has
    # had two rounds without taking it
    role = new_name("killed")
    other = holder(role)
    await other.held()
    scheduler = await schedulers()
    waiter = Waiter(scheduler, role)
    await _rounds(db, scheduler, role, 2)
    assert not waiter.got.is_set(), "the role was taken from a live holder"

    # When the holder is killed (its last renewal was at most one round before)
    offset = await _clock_offset(db)
    other.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    other.proc.wait(5)
    _, old_expiry, old_epoch = await _lease(db, role)

    # Then the role is taken over once the dead holder's lease has expired by the
    # database's clock, within one round of that, so within TTL + one round of the kill
    # (the documented bound)
    await waiter.acquired(2 * (TTL + RENEW))
    after_expiry = waiter.at + offset - old_expiry.replace(tzinfo=UTC).timestamp()
    assert 0 <= after_expiry <= RENEW + SLACK, f"{after_expiry:.3f}s after the expiry"
    took = waiter.at - killed
    assert took <= TTL + RENEW + SLACK, f"took over {took:.2f}s after the kill"
    new_holder, _, new_epoch = await _lease(db, role)
    assert (new_holder, new_epoch) == (scheduler.member_id, old_epoch + 1)
    await waiter.cancel()


@pytest.mark.processes
async def test_a_clean_release_in_another_process_hands_over_within_one_round(
    db: Database,
    schedulers: Callable[[], asyncio.Future[MySQLRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process, and a scheduler here waiting for it
    role = new_name("released")
    other = holder(role)
    await other.held()
    scheduler = await schedulers()
    waiter = Waiter(scheduler, role)
    await _rounds(db, scheduler, role, 2)
    assert not waiter.got.is_set(), "the role was taken from a live holder"

    # When the holder leaves its block
    assert other.proc.stdin is not None
    other.proc.stdin.close()
    assert await other.line() == "released"
    released = time.monotonic()

    # Then the waiter has it at its next round: no lease had to run out
    await waiter.acquired(TTL / 2)
    assert waiter.at - released <= RENEW + SLACK, f"{waiter.at - released:.2f}s"
    await waiter.cancel()


async def test_a_release_in_the_same_scheduler_hands_over_at_once(
    schedulers: Callable[[], asyncio.Future[MySQLRoleScheduler]],
) -> None:
    # Given a role held by a task, and another task of the same scheduler waiting for it
    role = new_name("same-process")
    scheduler = await schedulers()
    first = Waiter(scheduler, role)
    await first.acquired(5.0)
    second = Waiter(scheduler, role)

    # When the first lets go
    await first.cancel()
    released = time.monotonic()

    # Then the second has it after one round trip, not a polling interval
    await second.acquired(5.0)
    assert second.at - released < RENEW, f"{second.at - released:.3f}s"
    await second.cancel()


@pytest.mark.processes
async def test_a_frozen_holder_loses_its_lease_before_the_takeover(
    schedulers: Callable[[], asyncio.Future[MySQLRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process
    role = new_name("frozen")
    other = holder(role)
    await other.held()
    waiter = Waiter(await schedulers(), role)

    # When that process is frozen (as by a long pause or a partition) past the TTL
    other.proc.send_signal(signal.SIGSTOP)
    try:
        await waiter.acquired(TTL + RENEW + 5.0)
    finally:
        other.proc.send_signal(signal.SIGCONT)

    # Then, thawed, it reports the lease lost (its deadline passed before the row expired)
    line = await other.line()
    await waiter.cancel()
    assert line.startswith("lost"), line


async def test_a_holder_cut_off_from_the_database_loses_its_lease_before_the_row_expires(
    db: Database,
    schedulers: Callable[[], asyncio.Future[MySQLRoleScheduler]],
) -> None:
    # Given a role held here
    role = new_name("cut-off")
    scheduler = await schedulers()
    async with scheduler.hold(role) as lease:
        # When its rounds cannot write (the test locks the scheduler's member row, so
        # every heartbeat waits for the lock and fails)
        conn = await _locking_member_row(db, scheduler.member_id)
        try:
            async with asyncio.timeout(TTL + 5.0):
                await lease.wait_lost()
            lost_at = await _database_now(db)
            _, expiry, _ = await _lease(db, role)
        finally:
            await conn.rollback()
            conn.close()

    # Then the lease was lost by its own deadline while the row still named it
    assert lease.reason == "lease expired"
    assert lost_at < expiry, "the lease outlived the row others see"


async def _locking_member_row(db: Database, member_id: str) -> Connection:
    """A connection of the test's own with the member's row locked in an open transaction."""
    conn = await db.connect()
    async with conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute(
            f"SELECT id FROM {db.tables.members} WHERE id = %s FOR UPDATE", (member_id,)
        )
        assert await cur.fetchall(), "the member has no row"
    return conn


@pytest.mark.processes
async def test_killed_connections_cost_no_role(
    mysql_url: str,
    db: Database,
    schedulers: Callable[[], asyncio.Future[MySQLRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process and a waiter here
    role = new_name("dropped")
    other = holder(role)
    await other.held()
    scheduler = await schedulers()
    waiter = Waiter(scheduler, role)
    await _rounds(db, scheduler, role, 1)
    holder_id, expires, _ = await _lease(db, role)

    # When every connection to the test database is killed (as in a server restart)
    killed = await _kill_connections(mysql_url)
    assert killed >= 3

    # Then nobody loses or steals the role: once the lease in force at the kill has run
    # out by the database's clock, the holder still holds it, renewed through new
    # connections, and the waiter does not
    await _database_clock_passes(db, expires)
    now_held_by, now_expires, _ = await _lease(db, role)
    assert (now_held_by, now_expires > expires) == (holder_id, True), "no renewal after the kill"
    assert not waiter.got.is_set(), "the role was taken from a live holder"
    assert other.proc.poll() is None, "the holder lost its role"

    # And once the holder lets go, the waiter gets it before any lease could have run out
    assert other.proc.stdin is not None
    other.proc.stdin.close()
    assert await other.line() == "released"
    await waiter.acquired(TTL / 2)
    await waiter.cancel()


async def _kill_connections(url: str) -> int:
    """KILL every connection to the test database but the one doing it; how many."""
    rows = await admin_sql(
        url,
        "SELECT id FROM information_schema.processlist "
        "WHERE db = DATABASE() AND id <> CONNECTION_ID()",
    )
    for (connection_id,) in rows:
        try:
            await admin_sql(url, f"KILL {int(connection_id)}")
        except asyncmy.errors.OperationalError:  # gone already
            pass
    return len(rows)


async def test_roles_spread_over_live_schedulers_and_follow_them(
    schedulers: Callable[[], asyncio.Future[MySQLRoleScheduler]],
) -> None:
    roles = [new_name(f"shard-{i:02d}") for i in range(12)]
    holding: dict[str, MySQLRoleScheduler] = {}
    changed = asyncio.Event()  # set whenever ``holding`` changes

    async def keep_holding(scheduler: MySQLRoleScheduler, role: str) -> None:
        # What the engine's supervisor does: hold, work until lost, hold again.
        while True:
            async with scheduler.hold(role) as lease:
                holding[role] = scheduler
                changed.set()
                await lease.wait_lost()
                if holding.get(role) is scheduler:
                    del holding[role]
                    changed.set()

    async def spread(members: list[MySQLRoleScheduler], timeout: float = 15.0) -> None:
        """Wait until every role is held by one of ``members``, evenly."""
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                counts = Counter(holding.get(r) for r in roles)
                loads = [counts[m] for m in members]
                if sum(loads) == len(roles) and max(loads) - min(loads) <= 1:
                    return
                await changed.wait()

    tasks: dict[MySQLRoleScheduler, list[asyncio.Task[None]]] = {}

    def join(scheduler: MySQLRoleScheduler) -> None:
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


async def test_pruning_deletes_departed_members_and_long_free_roles(
    mysql_url: str, db: Database
) -> None:
    # Given a member gone for longer than the TTL, a live one, a role free for longer
    # than the retention and one released just now
    t = db.tables
    gone, live = new_name("gone"), new_name("live")
    old_role, new_role = new_name("old-role"), new_name("new-role")
    await admin_sql(
        mysql_url,
        f"INSERT INTO {t.members} (id, wanted, joined_at, expires_at) VALUES "
        "(%s, '[]', UTC_TIMESTAMP(6) - INTERVAL 1 HOUR, UTC_TIMESTAMP(6) - INTERVAL 1 MINUTE), "
        "(%s, '[]', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL 1 MINUTE)",
        (gone, live),
    )
    await admin_sql(
        mysql_url,
        f"INSERT INTO {t.roles} (role, expires_at) VALUES "
        "(%s, UTC_TIMESTAMP(6) - INTERVAL 8 DAY), (%s, UTC_TIMESTAMP(6))",
        (old_role, new_role),
    )

    # When the tables are pruned
    await prune_roles(db)

    # Then only the departed member and the long-free role are gone
    members = {r[0] for r in await admin_sql(mysql_url, f"SELECT id FROM {t.members}")}
    roles = {r[0] for r in await admin_sql(mysql_url, f"SELECT role FROM {t.roles}")}
    assert (gone in members, live in members) == (False, True)
    assert (old_role in roles, new_role in roles) == (False, True)
