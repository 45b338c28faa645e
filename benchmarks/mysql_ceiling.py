"""The machine's own ceiling for conveyor's write on MySQL/MariaDB, measured without conveyor.

    python benchmarks/mysql_ceiling.py [--url mysql://root@127.0.0.1:3306/test]
                                       [--clients 1,2,4,8,16] [--transactions 10000]
                                       [--repeat 3]

One transaction is the write of one step, done directly on the server by ``mariadb-slap``
(or ``mysqlslap``: C clients, so the client's CPU is not what is measured): update a
record (compare-and-set shape, on its run ID) and insert an event row, on conveyor's own
schema (every index included), ``migrate``d into a throw-away database that is dropped at
the end, seeded with 100,000 records. Each client sends, one statement at a time::

    SET @n = <random record>; BEGIN; UPDATE records ...; INSERT INTO events ...; COMMIT

The server must be durable: ``innodb_flush_log_at_trx_commit=1`` (and ``sync_binlog=1``
if the binary log is on), else the script exits. Each client count runs ``--repeat``
times (``--transactions`` rounded down to a multiple of the count), interleaved; the
ceiling is the best client count's median. Afterwards the records' versions and the
events are counted: every transaction must have updated one record and inserted one
event. Prints one JSON line (transactions per second per client count, the ceiling and
the client count it needs).

A three-step run is four such writes (trigger + three steps), so compare a benchmark's
``4 * runs_per_s`` (or ``steps_per_s * 4 / 3``) with ``tps``.
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
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncmy

from conveyor.adapters.mysql import migrate

ROWS = 100_000
_SEED_CHUNK = 2_000
_HEADERS = (
    '{"topic":"bench-2","run_id":"r0000000000000000000000000000000","record_version":"2",'
    '"run_state":"2","status":"2","workflow_name":"bench"}'
)
# One client's transaction (statements split by mariadb-slap at ";"). The event's ID is
# the microsecond clock, on a topic of the client's own: unique without a shared counter.
SCRIPT = (
    "SET @n = FLOOR(1 + RAND() * {rows});"
    "BEGIN;"
    "UPDATE records SET status = status + 1, version = version + 1, "
    "updated_at = UTC_TIMESTAMP(6), object = '{{\"score\":1}}', run_state = 2 "
    "WHERE run_id = CONCAT('r', @n) AND version = version;"
    "INSERT INTO events (topic, id, foreign_id, type, headers, created_at, dedupe) VALUES "
    "(CONCAT('ceiling-', CONNECTION_ID()), CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS UNSIGNED), "
    "CONCAT('r', @n), 2, '{headers}', UTC_TIMESTAMP(6), UNHEX(MD5(UUID())));"
    "COMMIT"
)
STATEMENTS = 5
"""Statements per transaction in ``SCRIPT``."""


def _parts(url: str) -> dict[str, Any]:
    p = urlsplit(url)
    return {
        "host": p.hostname or "127.0.0.1",
        "port": p.port or 3306,
        "user": p.username or "root",
        "password": p.password or "",
    }


def _with_database(url: str, name: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{name}", "", ""))


async def _sql(url: str, statements: list[str], database: str | None = None) -> list[Any]:
    conn = await asyncmy.connect(**_parts(url), database=database, autocommit=True)
    try:
        rows: list[Any] = []
        async with conn.cursor() as cur:
            for statement in statements:
                await cur.execute(statement)
                rows = list(await cur.fetchall())
        return rows
    finally:
        conn.close()


async def check_durable(url: str) -> dict[str, Any]:
    (row,) = await _sql(
        url,
        ["SELECT @@innodb_flush_log_at_trx_commit, @@log_bin, @@sync_binlog, @@version"],
    )
    flush, log_bin, sync_binlog, version = row
    if int(flush) != 1 or (int(log_bin) and int(sync_binlog) != 1):
        raise SystemExit(
            "the server is not durable: innodb_flush_log_at_trx_commit must be 1 "
            f"(is {flush}), and sync_binlog 1 if the binary log is on "
            f"(log_bin={log_bin}, sync_binlog={sync_binlog})"
        )
    return {
        "innodb_flush_log_at_trx_commit": int(flush),
        "log_bin": int(log_bin),
        "server": str(version),
    }


async def prepare(url: str, name: str) -> None:
    await _sql(url, [f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"])
    await migrate(_with_database(url, name))
    conn = await asyncmy.connect(**_parts(url), database=name, autocommit=True)
    try:
        async with conn.cursor() as cur:
            for first in range(1, ROWS + 1, _SEED_CHUNK):
                ids = range(first, min(first + _SEED_CHUNK, ROWS + 1))
                values = ", ".join(
                    f"('r{i}', 'bench', 'f{i}', 2, 1, '{{}}', UTC_TIMESTAMP(6), "
                    "UTC_TIMESTAMP(6), 1, '', '', '', '1')"
                    for i in ids
                )
                await cur.execute(
                    "INSERT INTO records (run_id, workflow_name, foreign_id, run_state, status, "
                    "object, created_at, updated_at, version, run_state_reason, "
                    f"status_description, trace_origin, reached) VALUES {values}"
                )
            await cur.execute("ANALYZE TABLE records")
            await cur.fetchall()
    finally:
        conn.close()


def slap(binary: str, url: str, name: str, clients: int, transactions: int) -> float:
    """Transactions per second of one ``mariadb-slap`` run of ``transactions`` (a multiple
    of ``clients``: the tool splits its statements evenly between them)."""
    p = _parts(url)
    script = SCRIPT.format(rows=ROWS, headers=_HEADERS)
    queries = transactions * STATEMENTS
    out = subprocess.run(
        [
            binary,
            f"--host={p['host']}",
            f"--port={p['port']}",
            f"--user={p['user']}",
            "--protocol=TCP",
            f"--create-schema={name}",
            "--no-drop",
            f"--concurrency={clients}",
            "--iterations=1",
            f"--number-of-queries={queries}",
            "--delimiter=;",
            f"--query={script}",
        ],
        env={**os.environ, "MYSQL_PWD": p["password"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.search(r"Average number of seconds to run all queries: ([0-9.]+)", out)
    if found is None:
        raise SystemExit(f"unexpected output of {binary}: {out}")
    return transactions / float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="mysql://root@127.0.0.1:3306/test")
    parser.add_argument("--clients", default="1,2,4,8,16")
    parser.add_argument("--transactions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    binary = shutil.which("mariadb-slap") or shutil.which("mysqlslap")
    if binary is None:
        raise SystemExit("mariadb-slap (or mysqlslap) is not installed")
    settings = asyncio.run(check_durable(args.url))
    clients = [int(c) for c in args.clients.split(",")]
    name = f"conveyor_ceiling_{uuid.uuid4().hex[:8]}"
    samples: dict[int, list[float]] = {c: [] for c in clients}
    asyncio.run(prepare(args.url, name))
    done = 0
    try:
        for _ in range(args.repeat):
            for c in clients:  # interleaved: the machine's noise spreads over all counts
                transactions = args.transactions // c * c
                samples[c].append(slap(binary, args.url, name, c, transactions))
                done += transactions
        # Every transaction updated one record and inserted one event.
        ((updates, events),) = asyncio.run(
            _sql(
                args.url,
                ["SELECT (SELECT SUM(version - 1) FROM records), (SELECT COUNT(*) FROM events)"],
                database=name,
            )
        )
        if int(updates) != done or int(events) != done:
            raise SystemExit(f"expected {done} writes, found {updates} updates, {events} events")
    finally:
        asyncio.run(_sql(args.url, [f"DROP DATABASE `{name}`"]))
    medians = {c: statistics.median(samples[c]) for c in clients}
    best = max(medians, key=lambda c: medians[c])
    print(
        json.dumps(
            {
                "benchmark": "mysql_ceiling",
                "transaction": "update a record + insert an event row",
                "statements_per_transaction": STATEMENTS,
                **settings,
                "transactions": args.transactions,
                "repeat": args.repeat,
                "tps": {str(c): round(medians[c]) for c in clients},
                "all_tps": {str(c): [round(x) for x in samples[c]] for c in clients},
                "ceiling_tps": round(medians[best]),
                "ceiling_clients": best,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
