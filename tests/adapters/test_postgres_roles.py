"""PostgreSQL role leases: takeover from dead or frozen holders, surviving dropped
connections, and spreading roles over live processes.

Holders that must die are real processes (``_pg_role_holder.py``); in-process schedulers
each get their own ``PostgresDatabase``, as separate processes would. Timings are the
tests' quick ones (``FAST_ROLES``: TTL 3 s, renewal every 0.25 s).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from _pg_support import FAST_ROLES, migrated, open_database, pg_url

from conveyor.adapters.postgres import PostgresRoleScheduler, assign_roles
from conveyor.adaptertest._fixtures import new_name

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


async def _hold_when_free(scheduler: PostgresRoleScheduler, role: str) -> asyncio.Task[float]:
    """Start waiting for ``role``; the task returns the monotonic time it got it."""
    got = asyncio.Event()

    async def run() -> float:
        async with scheduler.hold(role):
            at = time.monotonic()
            got.set()
            await asyncio.Event().wait()
        return at  # pragma: no cover

    task = asyncio.create_task(run())
    await asyncio.sleep(0)
    task.got = got  # type: ignore[attr-defined]
    return task


async def _acquired(task: asyncio.Task[float], timeout: float) -> float:
    async with asyncio.timeout(timeout):
        await task.got.wait()  # type: ignore[attr-defined]
    return time.monotonic()


async def test_a_killed_holders_role_is_taken_over_within_ttl_plus_renewal(
    schedulers: Callable[[], asyncio.Future[PostgresRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process, and a scheduler waiting for it here
    role = new_name("killed")
    other = holder(role)
    assert (await other.line()).startswith("held")
    waiter = await _hold_when_free(await schedulers(), role)
    with pytest.raises(TimeoutError):
        await _acquired(waiter, 2 * RENEW)

    # When the holder is killed
    killed_at = time.monotonic()
    other.proc.send_signal(signal.SIGKILL)
    other.proc.wait(5)

    # Then the role is taken over within TTL + one renewal period (plus slack)
    took = await _acquired(waiter, TTL + RENEW + 5.0) - killed_at
    waiter.cancel()
    assert took <= TTL + RENEW + 1.0, took


async def test_a_frozen_holder_loses_its_lease_before_the_takeover(
    schedulers: Callable[[], asyncio.Future[PostgresRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process
    role = new_name("frozen")
    other = holder(role)
    assert (await other.line()).startswith("held")
    waiter = await _hold_when_free(await schedulers(), role)

    # When that process is frozen (as by a long pause or a partition) past the TTL
    other.proc.send_signal(signal.SIGSTOP)
    try:
        await _acquired(waiter, TTL + RENEW + 5.0)
    finally:
        other.proc.send_signal(signal.SIGCONT)

    # Then, thawed, it reports the lease lost (its deadline passed before the row expired)
    line = await other.line()
    waiter.cancel()
    assert line.startswith("lost"), line


async def test_dropped_connections_cost_no_role(
    pg_url: str,
    schedulers: Callable[[], asyncio.Future[PostgresRoleScheduler]],
    holder: Callable[[str], Holder],
) -> None:
    # Given a role held by another process and a waiter here
    role = new_name("dropped")
    other = holder(role)
    assert (await other.line()).startswith("held")
    scheduler = await schedulers()
    waiter = await _hold_when_free(scheduler, role)

    # When every connection to the database is terminated (as in a server restart)
    async with open_database(pg_url, SCHEMA) as admin, admin.connection("test") as conn:
        dropped = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert dropped >= 3

    # Then for longer than the TTL nobody loses or steals the role
    with pytest.raises(TimeoutError):
        await _acquired(waiter, TTL + 2 * RENEW)
    assert other.proc.poll() is None, "the holder lost its role"

    # And once the holder lets go, the waiter gets it at once (no TTL to wait out)
    assert other.proc.stdin is not None
    released_at = time.monotonic()
    other.proc.stdin.close()
    assert await other.line() == "released"
    took = await _acquired(waiter, 5.0) - released_at
    waiter.cancel()
    assert took < 1.0, took


async def test_roles_spread_over_live_schedulers_and_follow_them(
    schedulers: Callable[[], asyncio.Future[PostgresRoleScheduler]],
) -> None:
    roles = [new_name(f"shard-{i:02d}") for i in range(12)]
    holding: dict[str, PostgresRoleScheduler] = {}

    async def keep_holding(scheduler: PostgresRoleScheduler, role: str) -> None:
        # What the engine's supervisor does: hold, work until lost, hold again.
        while True:
            async with scheduler.hold(role) as lease:
                holding[role] = scheduler
                await lease.wait_lost()
                if holding.get(role) is scheduler:
                    del holding[role]

    async def spread(members: list[PostgresRoleScheduler], timeout: float = 15.0) -> None:
        """Wait until every role is held by one of ``members``, evenly."""
        async with asyncio.timeout(timeout):
            while True:
                counts = Counter(holding.get(r) for r in roles)
                loads = [counts[m] for m in members]
                if sum(loads) == len(roles) and max(loads) - min(loads) <= 1:
                    return
                await asyncio.sleep(0.05)

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
