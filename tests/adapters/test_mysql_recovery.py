"""Workflows on MySQL survive every connection being killed server-side, repeatedly,
mid-run (what a server restart looks like from the clients), without lost or repeated
transitions.

Two worker processes (``_mysql_worker.py``, ``parallel_count=3``, records, events, roles
and timeouts on MySQL) run the runs while the test ``KILL``s every connection to the
test database, its own polling included, again and again while runs are in flight: the
runs are triggered in chunks, the next chunk after each kill, and each kill comes as
soon as every worker has connected again and another write has committed, and once more
just before they stop. Pacing the triggering by the kills keeps runs in flight for
every kill but the last few however fast the machine runs them.

Evidence: the records table is made system-versioned (MariaDB), so every committed write
of a record leaves its row version, in the write's own transaction, and each step's
attempt token (in the run's object) says which attempt a write committed. Not triggers,
as in ``test_mysql_workers.py``: a connection killed while the server loads a table's
triggers leaves that table's triggers broken ("Unknown trigger has an error in its body:
'Query was empty'") for every later write, on MariaDB 10.11.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from pathlib import Path
from typing import Any

import asyncmy
import pytest
from _mysql_processes import (
    COMPLETED,
    DONE_VERSION,
    Worker,
    connections_of,
    kill_connections,
    stop_all,
    until,
    worker_url,
)
from _mysql_support import admin_sql, mysql_url, open_mysql

from conveyor.adapters.mysql._database import Database
from conveyor.adapters.mysql._options import split_url

__all__ = ["mysql_url"]

pytestmark = pytest.mark.mysql

PREFIX = "mrecovery_"
ATTEMPT = "JSON_VALUE(CONVERT(object USING utf8mb4), '$.attempt')"
"""The token of the step attempt a record write committed (``_mysql_worker.py``)."""
WORKERS = 2
RUNS_EACH = 200
RUNS = WORKERS * RUNS_EACH
CHUNK = 20
"""Runs each worker triggers after each kill."""
CHUNKS = RUNS_EACH // CHUNK
KILLS = 5
"""Kills, at the least, that hit each worker while runs are in flight."""
WORK = 0.005
"""Seconds each step takes."""


@pytest.mark.processes
async def test_runs_complete_exactly_once_while_connections_are_killed(
    mysql_url: str, tmp_path: Path
) -> None:
    async with open_mysql(mysql_url, PREFIX, fresh=True) as db:
        ((version,),) = await admin_sql(mysql_url, "SELECT VERSION()")
        if "mariadb" not in str(version).lower():
            pytest.skip(f"needs MariaDB's system-versioned tables (the server is {version})")
        # Every committed write of a record leaves its row version in the table's history
        records = db.tables.records
        await admin_sql(mysql_url, f"ALTER TABLE {records} ADD SYSTEM VERSIONING")
        try:
            await _run_and_kill(mysql_url, db, tmp_path)
        finally:
            await admin_sql(mysql_url, f"ALTER TABLE {records} DROP SYSTEM VERSIONING")


async def _done(db: Database) -> int:
    """Runs at their last version, completed."""
    rows = await db.fetch(
        "test",
        f"SELECT count(*) FROM {db.tables.records} WHERE version = %s AND run_state = %s",
        (DONE_VERSION, COMPLETED),
    )
    return int(rows[0][0])


async def _writes(db: Database) -> int:
    """Record versions written so far (each record's versions add up to its version)."""
    rows = await db.fetch("test", f"SELECT COALESCE(SUM(version), 0) FROM {db.tables.records}")
    return int(rows[0][0])


async def _reconnected(mysql_url: str, pids: list[int]) -> bool:
    found = await connections_of(mysql_url, pids)
    return all(found[pid] for pid in pids)


async def _kill_while_running(
    mysql_url: str, db: Database, workers: list[Worker]
) -> list[tuple[Counter[int | None], int]]:
    """Trigger the runs a chunk per kill and kill every connection until they are done:
    each kill's victims and the runs done after it."""
    pids = [w.pid for w in workers]
    chunks = 0

    def trigger_chunk() -> None:
        nonlocal chunks
        for i, w in enumerate(workers):
            w.send(f"go {CHUNK} w{i}-{chunks}")
        chunks += 1

    async def ready_to_kill(since: int) -> bool:
        written = await _writes(db)
        if written >= RUNS * DONE_VERSION or written <= since:
            return written >= RUNS * DONE_VERSION
        return await _reconnected(mysql_url, pids)

    kills: list[tuple[Counter[int | None], int]] = []
    async with asyncio.timeout(60):
        trigger_chunk()
        while await _done(db) < RUNS:
            for w in workers:
                assert w.proc.poll() is None, f"worker {w.pid} died:\n{w.stderr()}"
            killed = await kill_connections(mysql_url, pids)
            kills.append((killed, await _done(db)))
            written = await _writes(db)
            if chunks < CHUNKS:
                trigger_chunk()
            await until("another write", functools.partial(ready_to_kill, written), 30.0)
    for w in workers:
        for _ in range(CHUNKS):
            assert await w.line() == f"triggered {CHUNK}"
    return kills


async def _run_and_kill(mysql_url: str, db: Database, tmp_path: Path) -> None:
    t = db.tables

    # Given two worker processes
    url = worker_url(mysql_url, PREFIX)
    workers = [Worker(url, "-", tmp_path / f"worker-{i}.err", WORK) for i in range(WORKERS)]
    pids = [w.pid for w in workers]
    try:
        for w in workers:
            assert await w.line() == "ready"

        # When every connection to the database is killed, again and again while the
        # runs are triggered and run: each time as soon as every worker has connected
        # again and another write has committed (the workers back off after failures),
        # and each worker triggers another chunk of runs after each kill
        kills = await _kill_while_running(mysql_url, db, workers)
        print(f"{len(kills)} kills (connections killed, runs done after): {kills}")

        # Then every run completed (above), and every worker is still alive...
        for w in workers:
            assert w.proc.poll() is None, f"worker {w.pid} died:\n{w.stderr()}"
        # ... and stops cleanly, even while it reconnects after yet another kill
        await until(
            "the workers connected again", functools.partial(_reconnected, mysql_url, pids), 10.0
        )
        final = await kill_connections(mysql_url, pids)
    finally:
        codes = stop_all(workers)
    for w in workers:
        assert codes[w.pid] == 0, f"worker {w.pid} exited {codes[w.pid]}:\n{w.stderr()}"
    assert all(final[pid] for pid in pids), f"the last kill missed a worker: {final}"

    # ... the kills landed mid-run and hit the workers' connections...
    mid_run = [killed for killed, finished in kills if finished < RUNS]
    assert len(mid_run) >= KILLS, f"too few kills mid-run: {kills}"
    for pid in pids:
        hit = sum(1 for killed in mid_run if killed[pid])
        assert hit >= KILLS, f"worker {pid} lost connections in {hit} kills: {kills}"

    # ... one run per foreign ID, each at its last version...
    rows = await db.fetch(
        "test",
        f"SELECT count(*), count(DISTINCT foreign_id), min(version), max(version), "
        f"min(run_state), max(run_state) FROM {t.records}",
    )
    assert tuple(rows[0]) == (RUNS, RUNS, DONE_VERSION, DONE_VERSION, COMPLETED, COMPLETED)

    # ... and every version of every run written exactly once, each step by one attempt
    twice = await db.fetch(
        "test",
        f"SELECT run_id, version, count(*) FROM {t.records} FOR SYSTEM_TIME ALL "
        "GROUP BY run_id, version HAVING count(*) > 1",
    )
    assert twice == [], f"record versions written twice: {twice[:5]}"
    rows = await db.fetch(
        "test",
        f"SELECT count(*), count(DISTINCT run_id), count(DISTINCT {ATTEMPT}), "
        f"min(version), max(version) FROM {t.records} FOR SYSTEM_TIME ALL",
    )
    assert tuple(rows[0]) == (
        RUNS * DONE_VERSION,
        RUNS,
        RUNS * (DONE_VERSION - 1),
        1,
        DONE_VERSION,
    )


async def test_a_cancellation_that_arrives_as_a_connection_is_made_is_not_lost(
    mysql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncmy waits for the TCP connection with asyncio.wait_for, which on Python 3.11
    # returns the connection when a cancellation arrives just as it is made: the role
    # scheduler's loop, stopped by cancelling it, then ran on, and a worker never stopped.
    real = asyncmy.connect
    made: list[Any] = []

    async def connect_losing_a_cancellation(**kwargs: Any) -> Any:
        conn = await real(**kwargs)
        made.append(conn)
        current = asyncio.current_task()
        assert current is not None
        current.cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            pass  # as wait_for does on 3.11 when the connection is made at that moment
        return conn

    monkeypatch.setattr(asyncmy, "connect", connect_losing_a_cancellation)
    db = Database(*split_url(mysql_url, {}))
    connecting = asyncio.ensure_future(db.connect())
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert connecting.cancelled()
    assert not made[0].connected, "the connection made was left open"
    await db.close()
