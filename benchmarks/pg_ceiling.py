"""The machine's own ceiling for conveyor's write on PostgreSQL, measured with pgbench.

    python benchmarks/pg_ceiling.py [--url postgresql://postgres@127.0.0.1/test]
                                    [--clients 1,2,4,8,16] [--seconds 10] [--repeat 3]

One pgbench transaction is the write of one step: update a record (compare-and-set on
its version) and insert its outbox row, on conveyor's own schema (every index included,
``migrate``d into a throw-away schema that is dropped at the end), with the server's
fsync and synchronous_commit (both must be on: checked). Each client count runs
``--repeat`` times; the ceiling is the best client count's median. Prints one JSON line
(transactions per second per client count, the ceiling and the client count it needs).

A three-step run is four such writes (trigger + three steps), so compare a benchmark's
``steps_per_s`` (or ``4 * runs_per_s``) with ``tps``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import uuid

import asyncpg

from conveyor.adapters.postgres import migrate

ROWS = 100_000

SCRIPT = """\\set n random(1, {rows})
BEGIN;
UPDATE {records} SET status = status + 1, version = version + 1, updated_at = now(),
    object = '\\x7b22736e6f7265223a317d'::bytea, run_state = 2
    WHERE run_id = 'r' || :n AND version = version;
INSERT INTO {outbox} (id, workflow_name, run_id, type, headers, created_at)
    VALUES (md5(random()::text || :n), 'bench', 'r' || :n, 2,
            '\\x7b22746f706963223a2262656e63682d32227d'::bytea, now());
END;
"""


async def prepare(url: str, schema: str) -> None:
    await migrate(url, schema=schema)
    conn = await asyncpg.connect(url)
    try:
        settings = {
            r["name"]: r["setting"]
            for r in await conn.fetch(
                "SELECT name, setting FROM pg_settings "
                "WHERE name IN ('fsync', 'synchronous_commit')"
            )
        }
        if settings != {"fsync": "on", "synchronous_commit": "on"}:
            raise SystemExit(f"fsync and synchronous_commit must be on: {settings}")
        await conn.execute(
            f"""INSERT INTO "{schema}".records (run_id, workflow_name, foreign_id, run_state,
                status, object, created_at, updated_at, version, run_state_reason,
                status_description, trace_origin)
            SELECT 'r' || i, 'bench', 'f' || i, 2, 1, '\\x7b7d', now(), now(), 1, '', '', ''
            FROM generate_series(1, {ROWS}) i"""
        )
        await conn.execute(f'VACUUM ANALYZE "{schema}".records')
    finally:
        await conn.close()


async def drop(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


def pgbench(url: str, script: str, clients: int, seconds: int) -> float:
    proc = subprocess.run(
        [
            shutil.which("pgbench") or "pgbench",
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={min(clients, os.cpu_count() or 1)}",
            f"--time={seconds}",
            f"--file={script}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"tps = ([\d.]+)", proc.stdout)
    if match is None:
        raise SystemExit(f"no tps in pgbench output:\n{proc.stdout}\n{proc.stderr}")
    return float(match[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1/test")
    parser.add_argument("--clients", default="1,2,4,8,16")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    schema = f"ceiling_{uuid.uuid4().hex[:8]}"
    asyncio.run(prepare(args.url, schema))
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(
                SCRIPT.format(rows=ROWS, records=f'"{schema}".records', outbox=f'"{schema}".outbox')
            )
        by_clients: dict[int, list[float]] = {}
        for clients in (int(c) for c in args.clients.split(",")):
            by_clients[clients] = [
                pgbench(args.url, f.name, clients, args.seconds) for _ in range(args.repeat)
            ]
        medians = {c: statistics.median(v) for c, v in by_clients.items()}
        best = max(medians, key=lambda c: medians[c])
        print(
            json.dumps(
                {
                    "benchmark": "pg_ceiling",
                    "transaction": "update record (CAS) + insert outbox row",
                    "tps": round(medians[best]),
                    "clients": best,
                    "tps_by_clients": {str(c): round(m) for c, m in medians.items()},
                    "runs": {str(c): [round(t) for t in v] for c, v in by_clients.items()},
                    "seconds": args.seconds,
                    "fsync": "on",
                    "synchronous_commit": "on",
                    "cpus": os.cpu_count(),
                }
            )
        )
    finally:
        os.unlink(f.name)
        asyncio.run(drop(args.url, schema))


if __name__ == "__main__":
    main()
