"""Many processes on one database: four workers of a workflow with ``parallel_count=4``,
one of them killed with SIGKILL halfway.

Evidence comes from the database: the workers journal every step execution as it starts
and every role they hold; a trigger on the records table logs every committed record
write with the writer's ``application_name`` (one per worker).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _pg_support import FAST_ROLES, migrated, open_database, pg_url

__all__ = ["pg_url"]

pytestmark = [pytest.mark.postgres, pytest.mark.processes]

SCHEMA = "many_workers"
JOURNAL = "many_workers_journal"
WORKER = Path(__file__).with_name("_pg_worker.py")
WORKERS = 4
RUNS_EACH = 100
RUNS = WORKERS * RUNS_EACH
DONE_VERSION = 4  # trigger + three steps

JOURNAL_DDL = f"""
DROP SCHEMA IF EXISTS {JOURNAL} CASCADE;
CREATE SCHEMA {JOURNAL};
CREATE TABLE {JOURNAL}.steps (
    seq bigserial, run_id text, status int, version bigint, pid int,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE {JOURNAL}.roles (
    seq bigserial, role text, event text, pid int,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE {JOURNAL}.writes (
    seq bigserial, run_id text, version bigint, app text,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION {JOURNAL}.log_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {JOURNAL}.writes (run_id, version, app)
    VALUES (NEW.run_id, NEW.version, current_setting('application_name'));
    RETURN NEW;
END $$;
CREATE TRIGGER log_write AFTER INSERT OR UPDATE ON {SCHEMA}.records
    FOR EACH ROW EXECUTE FUNCTION {JOURNAL}.log_write();
"""


class Worker:
    def __init__(self, url: str, index: int) -> None:
        options = "&".join(f"{k}={v}" for k, v in FAST_ROLES.items())
        self.app = f"worker-{index}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                f"{url}?schema={SCHEMA}&{options}&application_name={self.app}",
                JOURNAL,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    async def line(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        read = asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        return (await asyncio.wait_for(read, timeout)).strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


async def _until(what: str, check: Any, timeout: float) -> Any:
    """Poll ``check()`` (a coroutine function) until it returns something truthy.

    Polled: the evidence is in the database, written by worker processes that cannot
    signal this one.
    """
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)
    raise AssertionError(what)  # pragma: no cover


async def test_four_workers_share_the_shards_and_survive_a_sigkill(pg_url: str) -> None:
    await migrated(pg_url, SCHEMA)
    async with open_database(pg_url, SCHEMA, fresh=True) as db:
        t = db.tables

        async def query(sql: str, *args: object) -> list[Any]:
            return await db.fetch("test", sql, *args)

        async with db.connection("test") as conn:
            await conn.execute(JOURNAL_DDL)

        # Given four worker processes, with the roles spread evenly over them
        workers = [Worker(pg_url, i) for i in range(WORKERS)]
        try:
            for w in workers:
                assert await w.line() == "ready"

            async def spread() -> bool:
                rows = await query(
                    f"SELECT r.holder, count(*) FROM {t.roles} r WHERE r.expires_at > now() "
                    f"AND r.role IN (SELECT unnest(wanted) FROM {t.members} "
                    "WHERE expires_at > now()) GROUP BY r.holder"
                )
                wanted = await query(
                    f"SELECT count(DISTINCT w) FROM {t.members}, unnest(wanted) w "
                    "WHERE expires_at > now()"
                )
                counts = [r[1] for r in rows]
                return (
                    len(rows) == WORKERS
                    and sum(counts) == wanted[0][0]
                    and max(counts) - min(counts) <= 1
                )

            await _until("roles spread over the workers", spread, 30.0)

            # When runs are triggered on every worker and one is killed partway
            for i, w in enumerate(workers):
                w.send(f"go {RUNS_EACH} w{i}")

            async def done() -> int:
                rows = await query(
                    f"SELECT count(*) FROM {t.records} WHERE version = $1 AND run_state = 5",
                    DONE_VERSION,
                )
                return int(rows[0][0])

            await _until("a quarter of the runs done", lambda: _at_least(done, RUNS // 4), 30.0)
            victim = workers[1]
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            killed_at: datetime = (await query("SELECT clock_timestamp()"))[0][0]
            assert await done() < RUNS, "every run finished before the kill: nothing was tested"

            # Then every run completes, at the version of its last step
            await _until("every run done", lambda: _at_least(done, RUNS), 60.0)

            # ... and every role the killed worker held is taken over (even idle ones)
            async def taken_over() -> bool:
                rows = await query(
                    f"SELECT count(*) FROM (SELECT DISTINCT ON (role) role, event "
                    f"FROM {JOURNAL}.roles WHERE pid = $1 ORDER BY role, seq DESC) v "
                    "WHERE v.event = 'acquired' AND NOT EXISTS (SELECT 1 FROM "
                    f"{JOURNAL}.roles o WHERE o.role = v.role AND o.pid <> $1 AND o.at > $2 "
                    "AND o.event = 'acquired')",
                    victim.pid,
                    killed_at,
                )
                return bool(rows[0][0] == 0)

            await _until("the killed worker's roles taken over", taken_over, 30.0)
            stopping_at: datetime = (await query("SELECT clock_timestamp()"))[0][0]
        finally:
            for w in workers:
                if w.proc.poll() is None:
                    w.stop()
                else:
                    w.stop()

        await _check_writes(query)
        await _check_steps(query, victim)
        await _check_roles(query, victim, killed_at, stopping_at, {w.pid for w in workers})


async def _at_least(count: Any, n: int) -> bool:
    return bool(await count() >= n)


async def _check_writes(query: Any) -> None:
    # No record version was written twice; every run has versions 1..4 exactly once.
    twice = await query(
        f"SELECT run_id, version, array_agg(app) FROM {JOURNAL}.writes "
        "GROUP BY run_id, version HAVING count(*) > 1"
    )
    assert twice == [], f"record versions written twice: {twice[:5]}"
    rows = await query(f"SELECT count(*), count(DISTINCT run_id) FROM {JOURNAL}.writes")
    assert tuple(rows[0]) == (RUNS * DONE_VERSION, RUNS)


async def _check_steps(query: Any, victim: Worker) -> None:
    # A step ran twice only after an attempt of the killed process that never committed.
    repeated = await query(
        f"SELECT s.run_id, s.version, array_agg(s.pid ORDER BY s.seq), "
        f"(SELECT app FROM {JOURNAL}.writes w WHERE w.run_id = s.run_id "
        "AND w.version = s.version + 1) "
        f"FROM {JOURNAL}.steps s GROUP BY s.run_id, s.status, s.version HAVING count(*) > 1"
    )
    print(f"steps run again after the kill: {len(repeated)}")
    for run_id, version, pids, committed_by in repeated:
        *earlier, last = pids
        if set(earlier) != {victim.pid}:
            steps = await query(
                f"SELECT * FROM {JOURNAL}.steps WHERE run_id = $1 ORDER BY seq", run_id
            )
            writes = await query(
                f"SELECT * FROM {JOURNAL}.writes WHERE run_id = $1 ORDER BY seq", run_id
            )
            roles = await query(
                f"SELECT * FROM {JOURNAL}.roles WHERE pid = ANY($1) AND event <> 'acquired' "
                "ORDER BY seq",
                list(set(pids)),
            )
            print("STEPS", [tuple(r) for r in steps])
            print("WRITES", [tuple(r) for r in writes])
            print("ROLES", [tuple(r) for r in roles])
        assert set(earlier) == {victim.pid}, f"{run_id} v{version} re-run after {pids}"
        assert last != victim.pid
        assert committed_by != victim.app, f"{run_id} v{version}: the killed attempt committed"
    executions = await query(f"SELECT pid, count(*) FROM {JOURNAL}.steps GROUP BY pid")
    assert len(executions) == WORKERS, f"not every worker ran steps: {executions}"


async def _check_roles(
    query: Any, victim: Worker, killed_at: datetime, stopping_at: datetime, pids: set[int]
) -> None:
    # Each role (each shard) was held by one process at a time; the killed one's were
    # taken over by the others.
    # Up to the workers' shutdown (which hands roles around as they leave).
    rows = await query(
        f"SELECT role, event, pid, at FROM {JOURNAL}.roles WHERE at < $1 ORDER BY seq",
        stopping_at,
    )
    intervals: dict[str, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    open_since: dict[tuple[str, int], datetime] = {}
    for role, event, pid, at in rows:
        if event == "acquired":
            open_since[(role, pid)] = at
        elif pid != victim.pid and at > killed_at:
            print(f"after the kill, {pid} {event} {role}")
        else:
            intervals[role].append((open_since.pop((role, pid)), at, pid))
    for (role, pid), since in open_since.items():
        intervals[role].append((since, killed_at if pid == victim.pid else stopping_at, pid))
    for role, spans in intervals.items():
        spans.sort()
        for (_, end, pid), (start, _, next_pid) in itertools.pairwise(spans):
            assert pid == next_pid or end <= start, f"{role} held by {pid} and {next_pid} at once"
    victims_roles = {
        r for r, spans in intervals.items() if (killed_at, victim.pid) in {s[1:] for s in spans}
    }
    assert victims_roles, "the killed worker held no role"
    takeovers = []
    for role in victims_roles:
        after = [(start, p) for start, _, p in intervals[role] if start >= killed_at]
        assert after, f"{role} was not taken over"
        assert {p for _, p in after} <= pids - {victim.pid}, f"{role}: {after}"
        takeovers.append((after[0][0] - killed_at).total_seconds())
    print(f"roles taken over from the killed worker: {len(takeovers)}, after {sorted(takeovers)}")
