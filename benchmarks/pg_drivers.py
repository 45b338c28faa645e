"""asyncpg vs psycopg 3 on the record store's hot statements; prints one JSON line per case.

    python benchmarks/pg_drivers.py [--url postgresql://postgres@127.0.0.1/test] [--seconds 3]

Each case is one transaction of the store: compare-and-set update of a record plus the
insert of its outbox row (fsync and synchronous_commit as the server has them). Shapes:

- ``tx``: ``BEGIN; UPDATE ... WHERE version = $; INSERT outbox; COMMIT`` (four round trips);
- ``one``: the same as one statement (a data-modifying CTE, autocommit: one round trip);
- ``pipeline`` (psycopg only): the four statements of ``tx`` sent in one pipeline;
- ``batch64``: 64 writes in one statement (``unnest`` arrays), as ``store_many`` does.

Sequential (one connection) and concurrent (8 tasks on a pool of 8) variants. The tables
live in a throw-away schema that is dropped at the end. psycopg is not a dependency:
``pip install 'psycopg[binary,pool]'`` to run its cases.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

SCHEMA = f"drivers_{uuid.uuid4().hex[:8]}"
ROWS = 10_000

DDL = f"""
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.records (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    run_id text PRIMARY KEY,
    workflow_name text NOT NULL,
    foreign_id text NOT NULL,
    run_state smallint NOT NULL,
    status integer NOT NULL,
    object bytea NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL
);
CREATE UNIQUE INDEX ON {SCHEMA}.records (workflow_name, foreign_id) WHERE run_state IN (1, 2, 3);
CREATE INDEX ON {SCHEMA}.records (workflow_name, created_at, seq);
CREATE INDEX ON {SCHEMA}.records (workflow_name, status, created_at, seq);
CREATE TABLE {SCHEMA}.outbox (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    workflow_name text NOT NULL,
    run_id text NOT NULL,
    type integer NOT NULL,
    headers bytea NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO {SCHEMA}.records (run_id, workflow_name, foreign_id, run_state, status, object,
                              created_at, updated_at, version)
SELECT 'r' || i, 'wf', 'f' || i, 2, 1, '\\x7b7d', now(), now(), 0
FROM generate_series(0, {ROWS - 1}) i;
"""

UPDATE = f"UPDATE {SCHEMA}.records SET status = status + 1, object = $1, updated_at = $2, \
version = version + 1 WHERE run_id = $3 AND version = $4"
OUTBOX = f"INSERT INTO {SCHEMA}.outbox (id, workflow_name, run_id, type, headers, created_at) \
VALUES ($1, 'wf', $2, 2, $3, $4)"
ONE = f"""
WITH u AS ({UPDATE} RETURNING run_id)
INSERT INTO {SCHEMA}.outbox (id, workflow_name, run_id, type, headers, created_at)
SELECT $5, 'wf', u.run_id, 2, $6, $2 FROM u
"""
BATCH = f"""
WITH w AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::text[])
           AS w(run_id, expected, object, outbox_id)),
u AS (UPDATE {SCHEMA}.records r SET status = r.status + 1, object = w.object,
      updated_at = $5, version = r.version + 1
      FROM w WHERE r.run_id = w.run_id AND r.version = w.expected RETURNING r.run_id)
INSERT INTO {SCHEMA}.outbox (id, workflow_name, run_id, type, headers, created_at)
SELECT w.outbox_id, 'wf', w.run_id, 2, $6, $5 FROM w JOIN u USING (run_id)
"""
LOOKUP = f"SELECT * FROM {SCHEMA}.records WHERE run_id = $1"
LIST = f"SELECT * FROM {SCHEMA}.records WHERE workflow_name = 'wf' ORDER BY created_at, seq \
LIMIT 1000"
HEADERS = json.dumps({"topic": "wf-2", "run_id": "x" * 36, "workflow_name": "wf"}).encode()


class Rows:
    """Hands out (run_id, expected version) pairs round-robin; versions tracked locally."""

    def __init__(self) -> None:
        self.versions = [0] * ROWS
        self.next = 0

    def take(self) -> tuple[str, int]:
        i = self.next
        self.next = (i + 1) % ROWS
        v = self.versions[i]
        self.versions[i] = v + 1
        return f"r{i}", v


def psy(sql: str) -> str:
    """``$n`` placeholders as psycopg's numbered ``%(n)s`` (a dict of parameters)."""
    return re.sub(r"\$(\d+)", r"%(p\1)s", sql)


def params(args: tuple[Any, ...]) -> dict[str, Any]:
    return {f"p{i}": a for i, a in enumerate(args, 1)}


async def timed(
    seconds: float, tasks: int, op: Callable[[], Awaitable[int]]
) -> tuple[float, float]:
    """Operations per second of ``tasks`` tasks calling ``op`` (which returns how many it
    did), and this process's CPU microseconds per operation."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            n = await op()  # not `done += await op()`: that reads `done` before awaiting
            done += n

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return done / elapsed, cpu / max(1, done) * 1e6


def one_args(rows: Rows) -> tuple[Any, ...]:
    run_id, v = rows.take()
    return (b"{}", datetime.now(UTC), run_id, v, uuid.uuid4().hex, HEADERS)


def batch_args(rows: Rows) -> tuple[Any, ...]:
    taken = [rows.take() for _ in range(64)]
    return (
        [r for r, _ in taken],
        [v for _, v in taken],
        [b"{}"] * 64,
        [uuid.uuid4().hex for _ in taken],
        datetime.now(UTC),
        HEADERS,
    )


async def _no_reset(conn: object) -> None:
    """Skip asyncpg's reset query on release (a round trip per use; we keep no session state)."""


async def asyncpg_cases(url: str, seconds: float, rows: Rows) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    pool = await asyncpg.create_pool(url, min_size=8, max_size=8, reset=_no_reset)
    try:

        async def tx() -> int:
            run_id, v = rows.take()
            async with pool.acquire() as conn, conn.transaction():
                now = datetime.now(UTC)
                await conn.execute(UPDATE, b"{}", now, run_id, v)
                await conn.execute(OUTBOX, uuid.uuid4().hex, run_id, HEADERS, now)
            return 1

        async def one() -> int:
            async with pool.acquire() as conn:
                await conn.execute(ONE, *one_args(rows))
            return 1

        async def batch() -> int:
            async with pool.acquire() as conn:
                await conn.execute(BATCH, *batch_args(rows))
            return 64

        async def lookup() -> int:
            async with pool.acquire() as conn:
                await conn.fetchrow(LOOKUP, rows.take()[0])
            return 1

        async def list_1000() -> int:
            async with pool.acquire() as conn:
                await conn.fetch(LIST)
            return 1

        cases = (("tx", tx), ("one", one), ("batch64", batch), ("lookup", lookup))
        for name, op in (*cases, ("list1000", list_1000)):
            for tasks in (1, 8):
                out[f"asyncpg_{name}_x{tasks}"] = await timed(seconds, tasks, op)
    finally:
        await pool.close()
    return out


async def psycopg_cases(url: str, seconds: float, rows: Rows) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    # psycopg is not a dependency of conveyor: pip install 'psycopg[binary,pool]' to compare.
    psycopg_pool: Any = importlib.import_module("psycopg_pool")
    pool = psycopg_pool.AsyncConnectionPool(
        url, min_size=8, max_size=8, open=False, kwargs={"prepare_threshold": 0}
    )
    await pool.open(wait=True)
    update, outbox, one_sql, batch_sql = psy(UPDATE), psy(OUTBOX), psy(ONE), psy(BATCH)
    lookup_sql = psy(LOOKUP)
    try:

        async def tx() -> int:
            run_id, v = rows.take()
            async with pool.connection() as conn, conn.transaction():
                now = datetime.now(UTC)
                await conn.execute(update, params((b"{}", now, run_id, v)))
                await conn.execute(outbox, params((uuid.uuid4().hex, run_id, HEADERS, now)))
            return 1

        async def pipeline() -> int:
            run_id, v = rows.take()
            async with pool.connection() as conn, conn.pipeline(), conn.transaction():
                now = datetime.now(UTC)
                await conn.execute(update, params((b"{}", now, run_id, v)))
                await conn.execute(outbox, params((uuid.uuid4().hex, run_id, HEADERS, now)))
            return 1

        async def one() -> int:
            async with pool.connection() as conn:
                await conn.execute(one_sql, params(one_args(rows)))
            return 1

        async def batch() -> int:
            async with pool.connection() as conn:
                await conn.execute(batch_sql, params(batch_args(rows)))
            return 64

        async def lookup() -> int:
            async with pool.connection() as conn:
                cur = await conn.execute(lookup_sql, params((rows.take()[0],)), binary=True)
                await cur.fetchone()
            return 1

        async def list_1000() -> int:
            async with pool.connection() as conn:
                cur = await conn.execute(LIST, binary=True)
                await cur.fetchall()
            return 1

        cases = (("tx", tx), ("pipeline", pipeline), ("one", one), ("batch64", batch))
        for name, op in (*cases, ("lookup", lookup), ("list1000", list_1000)):
            for tasks in (1, 8):
                out[f"psycopg_{name}_x{tasks}"] = await timed(seconds, tasks, op)
    finally:
        await pool.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1/test")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    admin = await asyncpg.connect(args.url)
    try:
        await admin.execute(DDL)
        for driver in (asyncpg_cases, psycopg_cases):
            # Each driver starts from the same table state (versions continue).
            rows = Rows()
            await admin.execute(f"UPDATE {SCHEMA}.records SET version = 0")
            await admin.execute(f"TRUNCATE {SCHEMA}.outbox")
            await admin.execute(f"VACUUM {SCHEMA}.records")
            figures = await driver(args.url, args.seconds, rows)
            for case, (rate, cpu) in figures.items():
                line = {"case": case, "per_s": round(rate), "client_cpu_us": round(cpu)}
                print(json.dumps(line), flush=True)
    finally:
        await admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
