"""Many processes on one MySQL database: three workers of a workflow with
``parallel_count=3`` (records, events, roles and timeouts all on MySQL), one of them
SIGKILLed between a third and two thirds of the way, while it has a step attempt started
and not committed.

Evidence comes from the database. The workers (``_mysql_worker.py``) journal every step
attempt as it starts, with an attempt token the step also puts in the run's object, and
every role they hold. Triggers on the records table log every record write in the
write's own transaction, with the token of the attempt it commits: a logged write is a
committed one, and an attempt whose token no write carries never committed.
"""

from __future__ import annotations

import itertools
import signal
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _mysql_processes import (
    COMPLETED,
    DONE_VERSION,
    Worker,
    journal_ddl,
    roles_spread,
    stop_all,
    until,
    worker_url,
)
from _mysql_support import mysql_url, open_mysql

__all__ = ["mysql_url"]

pytestmark = [pytest.mark.mysql, pytest.mark.processes]

PREFIX = "mworkers_"
JOURNAL = "mworkers_j_"
WORKERS = 3
RUNS_EACH = 100
RUNS = WORKERS * RUNS_EACH
WORK = 0.005
"""Seconds a step takes..."""
VICTIM_WORK = 0.1
"""...in the worker to be killed: it is killed once one of its attempts started less than
half of that ago and has not committed, so the attempt cannot commit before the kill."""


async def test_three_workers_share_the_shards_and_survive_a_sigkill(
    mysql_url: str, tmp_path: Path
) -> None:
    async with open_mysql(mysql_url, PREFIX, fresh=True) as db:
        t = db.tables
        for statement in journal_ddl(t.records, JOURNAL):
            await db.execute("test", statement)

        async def query(sql: str, *args: object) -> list[Any]:
            return await db.fetch("test", sql.replace("{j}", JOURNAL), args)

        # Given three worker processes, with the roles spread evenly over them
        url = worker_url(mysql_url, PREFIX)
        workers = [
            Worker(url, JOURNAL, tmp_path / f"worker-{i}.err", VICTIM_WORK if i == 1 else WORK)
            for i in range(WORKERS)
        ]
        victim = workers[1]
        try:
            for w in workers:
                assert await w.line() == "ready"
            await until(
                "the roles spread over the workers", lambda: roles_spread(db, WORKERS), 30.0
            )

            # When runs are triggered on every worker, and one is killed between a third
            # and two thirds of the way while it has an attempt started and not committed
            # (started recently enough that it cannot commit before the kill lands)
            for i, w in enumerate(workers):
                w.send(f"go {RUNS_EACH} w{i}")

            async def ripe() -> tuple[int, int] | None:
                (done, pending), *_ = await query(
                    f"SELECT (SELECT count(*) FROM {t.records} WHERE version = %s "
                    "AND run_state = %s), (SELECT count(*) FROM `{j}steps` s WHERE s.pid = %s "
                    "AND s.at > UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND "
                    "AND NOT EXISTS (SELECT 1 FROM `{j}writes` w WHERE w.attempt = s.attempt))",
                    DONE_VERSION,
                    COMPLETED,
                    victim.pid,
                    int(VICTIM_WORK / 2 * 1e6),
                )
                assert done <= 2 * RUNS // 3, "two thirds done before the victim was caught"
                if done >= RUNS // 3 and pending > 0:
                    return int(done), int(pending)
                return None

            done_at_kill, _ = await until("a third of the runs done", ripe, 30.0)
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            (killed_at,), *_ = await query("SELECT UTC_TIMESTAMP(6)")

            # Then every run completes, at the version of its last step
            async def all_done() -> bool:
                rows = await query(
                    f"SELECT count(*) FROM {t.records} WHERE version = %s AND run_state = %s",
                    DONE_VERSION,
                    COMPLETED,
                )
                return bool(rows[0][0] == RUNS)

            await until("every run done", all_done, 40.0)

            # ... and every role the killed worker held is taken over (even idle ones)
            async def taken_over() -> bool:
                rows = await query(
                    "SELECT role, event FROM `{j}roles` WHERE pid = %s ORDER BY seq", victim.pid
                )
                last = {role: event for role, event in rows}
                held = [role for role, event in last.items() if event == "acquired"]
                if not held:
                    return True
                after = await query(
                    "SELECT DISTINCT role FROM `{j}roles` WHERE pid <> %s AND at > %s "
                    "AND event = 'acquired'",
                    victim.pid,
                    killed_at,
                )
                return set(held) <= {r for (r,) in after}

            await until("the killed worker's roles taken over", taken_over, 20.0)
            (stopping_at,), *_ = await query("SELECT UTC_TIMESTAMP(6)")
            for w in workers:
                if w is not victim:
                    assert w.proc.poll() is None, f"worker {w.pid} died:\n{w.stderr()}"
        finally:
            codes = stop_all(workers)
        for w in workers:
            if w is not victim:
                assert codes[w.pid] == 0, f"worker {w.pid} exited {codes[w.pid]}:\n{w.stderr()}"
        print(f"killed at {done_at_kill} of {RUNS} runs done")

        await check_records(query, t.records)
        await check_steps(query, victim.pid)
        await check_roles(query, victim.pid, killed_at, stopping_at, set(codes))


Query = Callable[..., Awaitable[list[Any]]]


async def check_records(query: Query, records: str) -> None:
    # One run per foreign ID, each at its last version...
    rows = await query(
        f"SELECT count(*), count(DISTINCT foreign_id), min(version), max(version), "
        f"min(run_state), max(run_state) FROM {records}"
    )
    assert tuple(rows[0]) == (RUNS, RUNS, DONE_VERSION, DONE_VERSION, COMPLETED, COMPLETED)
    # ... and no record version written twice: each run has versions 1..4, each once.
    twice = await query(
        "SELECT run_id, version, count(*), GROUP_CONCAT(attempt) FROM `{j}writes` "
        "GROUP BY run_id, version HAVING count(*) > 1"
    )
    assert twice == [], f"record versions written twice: {twice[:5]}"
    rows = await query(
        "SELECT count(*), count(DISTINCT run_id), min(version), max(version) FROM `{j}writes`"
    )
    assert tuple(rows[0]) == (RUNS * DONE_VERSION, RUNS, 1, DONE_VERSION)


async def check_steps(query: Query, victim: int) -> None:
    # Every step of every run was committed by exactly one attempt, the one whose token the
    # write of the next version carries.
    rows = await query(
        "SELECT s.run_id, s.version, s.pid, s.attempt, w.version IS NOT NULL, "
        "w.version = s.version + 1 FROM `{j}steps` s "
        "LEFT JOIN `{j}writes` w ON w.attempt = s.attempt ORDER BY s.seq"
    )
    attempts: dict[tuple[str, int], list[tuple[int, str, bool]]] = defaultdict(list)
    for run_id, version, pid, attempt, committed, next_version in rows:
        assert not committed or next_version, f"{attempt} committed the wrong version"
        attempts[(run_id, version)].append((pid, attempt, bool(committed)))
    assert len(attempts) == RUNS * (DONE_VERSION - 1)
    uncommitted = [(key, a) for key, runs in attempts.items() for a in runs if not a[2]]
    repeated = {key: runs for key, runs in attempts.items() if len(runs) > 1}
    print(f"uncommitted attempts: {len(uncommitted)}, steps run again: {len(repeated)}")
    for key, runs in attempts.items():
        committed = [a for a in runs if a[2]]
        assert len(committed) == 1, f"{key}: committed by {committed}"
    # Only the killed worker left attempts uncommitted (there was one at the kill)...
    assert uncommitted, "the killed worker had no attempt in flight"
    assert {pid for _, (pid, _, _) in uncommitted} == {victim}, f"{uncommitted[:5]}"
    # ... and a step ran again only after such an attempt, and only once more.
    for key, runs in repeated.items():
        *earlier, last = runs
        assert all(pid == victim and not done for pid, _, done in earlier), f"{key}: {runs}"
        assert last[0] != victim, f"{key}: {runs}"
        assert last[2], f"{key}: {runs}"
    executions = await query("SELECT pid, count(*) FROM `{j}steps` GROUP BY pid")
    assert len(executions) == WORKERS, f"not every worker ran steps: {executions}"


async def check_roles(
    query: Query, victim: int, killed_at: datetime, stopping_at: datetime, pids: set[int]
) -> None:
    # Each role (each shard) was held by one process at a time, up to the workers'
    # shutdown (which hands roles around as they leave); the killed one's were taken over
    # by the others.
    rows = await query(
        "SELECT role, event, pid, at FROM `{j}roles` WHERE at < %s ORDER BY seq", stopping_at
    )
    intervals: dict[str, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    open_since: dict[tuple[str, int], datetime] = {}
    for role, event, pid, at in rows:
        if event == "acquired":
            open_since[(role, pid)] = at
        else:
            if pid != victim and at > killed_at:
                print(f"after the kill, {pid} {event} {role}")
            intervals[role].append((open_since.pop((role, pid)), at, pid))
    for (role, pid), since in open_since.items():
        intervals[role].append((since, killed_at if pid == victim else stopping_at, pid))
    for role, spans in intervals.items():
        spans.sort()
        for (_, end, pid), (start, _, next_pid) in itertools.pairwise(spans):
            assert pid == next_pid or end <= start, f"{role} held by {pid} and {next_pid} at once"
    victims_roles = {
        r for r, spans in intervals.items() if any(s[1:] == (killed_at, victim) for s in spans)
    }
    assert victims_roles, "the killed worker held no role"
    takeovers = []
    for role in victims_roles:
        after = [(start, p) for start, _, p in intervals[role] if start >= killed_at]
        assert after, f"{role} was not taken over"
        assert {p for _, p in after} <= pids - {victim}, f"{role}: {after}"
        takeovers.append(round((after[0][0] - killed_at).total_seconds(), 2))
    print(f"roles taken over from the killed worker: {len(takeovers)}, after {sorted(takeovers)}")
