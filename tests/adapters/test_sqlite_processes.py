"""The SQLite adapters across processes: several worker processes on one file.

Workers are ``_sqlite_workers.py`` run as scripts; each reports ``ready`` and, at the
end, a JSON line. A worker that raises (for instance "database is locked") exits with a
non-zero code and its traceback, which fails the test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conveyor.abc import Event
from conveyor.adapters.sqlite import SQLiteEventStreamer, migrate

pytestmark = pytest.mark.processes

WORKERS = Path(__file__).with_name("_sqlite_workers.py")
STARTUP = 30.0
T = TypeVar("T")


class Worker:
    """One worker process, started in a mode, finished by closing its stdin."""

    def __init__(self, process: asyncio.subprocess.Process, hello: str) -> None:
        self.process = process
        self.hello = hello

    @classmethod
    async def start(cls, *args: str) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKERS),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), STARTUP)).decode().strip()
        if not line.startswith("ready"):
            await process.wait()
            assert process.stderr is not None
            err = (await process.stderr.read()).decode()
            raise AssertionError(f"worker {args[0]} failed to start:\n{err}")
        return cls(process, line)

    async def finish(self, timeout: float = STARTUP) -> dict[str, Any]:
        """Close stdin, wait for the exit, and return the worker's JSON report."""
        process = self.process
        assert process.stdin is not None
        process.stdin.close()
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode == 0, f"worker exited {process.returncode}:\n{err.decode()}"
        report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return report

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    async def reap(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


@pytest.fixture
async def workers() -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        await worker.reap()


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns a value (not None), failing after ``timeout``.

    Polled: the state is in the file, changed by other processes that cannot signal this one.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------------------- events


async def test_events_appended_by_several_processes_are_read_once_in_id_order(
    tmp_path: Path, workers: list[Worker]
) -> None:
    path = str(tmp_path / "appends.db")
    await migrate(path)
    streamer = await SQLiteEventStreamer.open(path)
    try:
        receiver = await streamer.new_receiver("shared", "reader")
        per_process = 400
        # Given three processes appending to one topic at once
        workers.extend(
            [
                await Worker.start("append", path, "shared", f"p{i}", str(per_process))
                for i in range(3)
            ]
        )
        # When a reader consumes while they write
        events: list[Event] = []
        async with asyncio.timeout(60):
            while len(events) < 3 * per_process:
                batch = await receiver.recv(64)
                for event in batch:
                    await receiver.ack(event)
                events.extend(batch)
        reports = [await worker.finish() for worker in workers]
    finally:
        await streamer.close()

    # Then it saw every event exactly once, in increasing id order, each writer's in order
    assert [r["sent"] for r in reports] == [per_process] * 3
    ids = [e.id for e in events]
    assert ids == sorted(set(ids)), "ids repeated or out of order"
    seen: dict[str, list[int]] = defaultdict(list)
    for event in events:
        seen[event.headers["proc"]].append(int(event.headers["seq"]))
    assert seen == {f"p{i}": list(range(per_process)) for i in range(3)}


async def test_writers_in_several_processes_never_see_database_is_locked(
    tmp_path: Path, workers: list[Worker]
) -> None:
    path = tmp_path / "contended.db"
    await migrate(str(path))
    # Given three processes writing records, outbox events, timeouts, events and cursors
    workers.extend([await Worker.start("writers", str(path), f"p{i}", "3") for i in range(3)])
    # When they contend for the same foreign IDs for a few seconds
    reports = [await worker.finish(timeout=60) for worker in workers]

    # Then none failed (a "database is locked" would have), and each did real work
    assert all(r["started"] > 0 for r in reports), reports
    assert sum(r["started"] for r in reports) == sum(r["completed"] for r in reports)
    # And the schema kept one active run per foreign ID throughout (none is left active)
    assert _query(path, "SELECT COUNT(*) FROM records WHERE run_state IN (1, 2, 3)") == [(0,)]
    started = sum(r["started"] for r in reports)
    assert _query(path, "SELECT COUNT(*) FROM records") == [(started,)]
    assert _query(path, "SELECT COUNT(*) FROM outbox") == [(2 * started,)]


# ---------------------------------------------------------------------------- roles

TTL = 1.0
POLL = 0.05
GRACE = 4 * POLL
ROLES = 30


def _leases(path: Path) -> dict[str, str]:
    """Role -> holder, for leases not yet expired by the wall clock."""
    now_us = time.time_ns() // 1000
    rows = _query(path, "SELECT role, holder, expires_wall FROM leases")
    return {role: holder for role, holder, expires in rows if expires > now_us}


def _holds(log: Path, killed: dict[int, int]) -> dict[str, list[tuple[int, int, int]]]:
    """Role -> (start, end, pid) of every hold in the shared log; a killed process's
    open holds end at its kill."""
    intervals: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    open_holds: dict[tuple[str, int], int] = {}
    for line in log.read_text().splitlines():
        stamp, pid, name, what = line.split()
        key = (name, int(pid))
        if what == "acquire":
            assert key not in open_holds, f"{key} acquired twice"
            open_holds[key] = int(stamp)
        else:
            intervals[name].append((open_holds.pop(key), int(stamp), int(pid)))
    for (role, holder), start in open_holds.items():
        intervals[role].append((start, killed.get(holder, time.monotonic_ns()), holder))
    return intervals


def _assert_never_held_twice(intervals: dict[str, list[tuple[int, int, int]]]) -> None:
    for role, holds in intervals.items():
        holds.sort()
        for (_, end, pid), (start, _, next_pid) in itertools.pairwise(holds):
            assert start >= end, f"{role}: {next_pid} took it before {pid} let go"


async def test_roles_spread_over_processes_and_are_never_held_twice(
    tmp_path: Path, workers: list[Worker]
) -> None:
    path = tmp_path / "roles.db"
    log = tmp_path / "holds.log"
    await migrate(str(path))
    args = ("roles", str(path), str(ROLES), str(TTL), str(POLL), str(log))

    # Given three processes that each want all 30 roles, started one after another
    for _ in range(3):
        workers.append(await Worker.start(*args))
    members = {w.hello.split()[1] for w in workers}

    # Then every role is held, and each process holds a fair share
    async def spread() -> Counter[str] | None:
        held = _leases(path)
        shares = Counter(held.values())
        if (
            len(held) == ROLES
            and set(shares) == members
            and all(5 <= n <= 15 for n in shares.values())
        ):
            return shares
        return None

    shares = await eventually(spread, 20, "the roles to spread over the three processes")
    assert sum(shares.values()) == ROLES
    reports = [await worker.finish() for worker in workers]

    # And no role ever had two holders at once
    assert all(isinstance(r["held"], list) for r in reports)
    _assert_never_held_twice(_holds(log, {}))


async def test_a_killed_holders_roles_are_taken_over_once_their_leases_expire(
    tmp_path: Path, workers: list[Worker]
) -> None:
    path = tmp_path / "takeover.db"
    log = tmp_path / "holds.log"
    await migrate(str(path))
    args = ("roles", str(path), str(ROLES), str(TTL), str(POLL), str(log))
    for _ in range(3):
        workers.append(await Worker.start(*args))
    victim, *survivors = workers
    victim_id = victim.hello.split()[1]

    async def victim_holds() -> int | None:
        held = _leases(path)
        mine = sum(1 for holder in held.values() if holder == victim_id)
        return mine if len(held) == ROLES and mine > 0 else None

    await eventually(victim_holds, 20, "the first process to hold some roles")

    # When the process holding them is killed outright
    victim.kill()
    killed_at = time.monotonic_ns()
    await victim.process.wait()

    # Then the others hold every role again once the leases have expired. The documented
    # worst case is TTL + GRACE + POLL (1.25 s); the bound is five lease times, which
    # tells "at the leases' expiry" from "never" and from "once the dead member's rows are
    # deleted" (ten lease times), without timing the expected value.
    async def taken_over() -> float | None:
        held = _leases(path)
        if len(held) == ROLES and victim_id not in held.values():
            return (time.monotonic_ns() - killed_at) / 1e9
        return None

    took = await eventually(taken_over, 10 * TTL, "the survivors to take the roles over")
    assert took < 5 * TTL, f"takeover took {took:.2f}s"
    for worker in survivors:
        await worker.finish()
    _assert_never_held_twice(_holds(log, {victim.process.pid: killed_at}))
