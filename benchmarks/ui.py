"""Latency of the web UI's JSON API over a large store; prints one JSON line.

    python benchmarks/ui.py [--runs 1000000] [--stores sqlite,postgres] [--requests 200]
                            [--keep] [--tcp-nodelay] [--sqlite-path /tmp/conveyor-bench-ui.db]
                            [--pg-url postgresql://postgres@127.0.0.1:5432/test]

The requirement: with 1,000,000 runs in the store, each of these answers in under 100 ms
at the median through the HTTP API (``conveyor.web``, served by ``UIServer``):

- ``first_page``: ``GET /api/runs?limit=50`` (every workflow, newest first);
- ``by_status``: one workflow's runs at one status, the status given by name
  (``workflow=orders&status=PACKED``);
- ``by_prefix``: runs whose foreign ID starts with a prefix that a few hundred runs have
  (``foreign_id_prefix=customer-00123``, across workflows);
- ``after_cursor``: the page after the cursor that 20 pages of ``first_page`` lead to
  (a page 1,000 runs deep);
- ``history``: one run's history (``GET /api/runs/{run_id}/history``), a different run
  of a random sample each request.

The data is bulk-loaded by this script straight into conveyor's schema (made by
``conveyor.migrate``): ``--runs`` runs of two workflows (``orders`` and ``refunds``, five
statuses each, their definitions registered so that status names resolve), their
foreign IDs ``customer-NNNNNNN`` (four runs each, two per workflow: the older finished, the
newer mostly in progress, so at most one active run per workflow and foreign ID), created
over 30 days, and three history rows per run. SQLite: ``executemany`` in one transaction
with the secondary indexes dropped and then rebuilt; PostgreSQL: ``COPY`` with the indexes
and keys dropped and then rebuilt, ``VACUUM ANALYZE``. The failures table stays empty.

For each store the server runs in this process (the store opened with ``conveyor.connect``,
as ``conveyor ui`` does) and the HTTP client in another one (``httpx``, one keep-alive
connection, requests one after another): a few warm-up requests, then ``--requests``
timed ones per shape, each from sending to the body read. Every response is checked (its
status, the page's size and that its runs match the filter). The line holds p50, p90 and
p99 per shape per store, the load time and the row counts.

``--keep`` keeps the loaded data (the SQLite file; the PostgreSQL tables, prefixed
``bench_ui_`` in the ``conveyor`` schema), and a later run with the same ``--runs`` reuses
it; without it, both are removed at the end. Progress goes to stderr.

``--tcp-nodelay`` sets ``TCP_NODELAY`` on the server's listening socket (Linux passes it
on to the connections it accepts). ``UIServer`` makes its socket with protocol 0, and
asyncio sets ``TCP_NODELAY`` only on sockets of protocol ``IPPROTO_TCP``, so without it a
response written in two parts (uvicorn writes the headers, then the body) waits for the
client's delayed ACK on a keep-alive connection: about 40 ms a request on Linux. The flag
measures the API as it would be with the server setting it (a no-op once it does).
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import hashlib
import itertools
import json
import math
import os
import platform
import random
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import conveyor
from conveyor import Builder, Run
from conveyor._registry import definition_document

SCRIPT = os.path.abspath(__file__)
WARMUP = 5
PAGE = 50
FOLLOW = 20
"""Pages of ``first_page`` followed before ``after_cursor`` (so it is 1,000 runs deep)."""
DAYS = 30
PG_PREFIX = "bench_ui_"
PG_SCHEMA = "conveyor"
PG_TABLES = (
    "records",
    "outbox",
    "topics",
    "events",
    "cursors",
    "timeouts",
    "roles",
    "members",
    "listeners",
    "failures",
    "history",
    "definitions",
    "schema_migrations",
    "meta",  # this benchmark's own: how many runs were loaded
)


def log(*parts: object) -> None:
    print("[ui]", *parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- workflows


class OrderStatus(enum.IntEnum):
    CREATED = 1
    PICKED = 2
    PACKED = 3
    SHIPPED = 4
    DELIVERED = 5


class RefundStatus(enum.IntEnum):
    REQUESTED = 1
    REVIEWED = 2
    APPROVED = 3
    PAID = 4
    CLOSED = 5


WORKFLOWS: tuple[tuple[str, type[enum.IntEnum]], ...] = (
    ("orders", OrderStatus),
    ("refunds", RefundStatus),
)
NAMES = [{int(s): s.name for s in status_type} for _, status_type in WORKFLOWS]


def definition(name: str, status_type: type[enum.IntEnum]) -> tuple[str, str]:
    """The workflow's definition document (as a running workflow registers it) and hash."""

    async def step(run: Run[dict[str, Any], Any]) -> Any:
        return None

    b: Builder[dict[str, Any], Any] = Builder(name, dict, status_type)
    members = list(status_type)
    for a, z in itertools.pairwise(members):
        b.add_step(a, step, z)
    document = definition_document(b.definition())
    return document, hashlib.sha256(document.encode()).hexdigest()


async def register(url: str) -> None:
    async with conveyor.connect(url) as backend:
        store: Any = backend.record_store
        for name, status_type in WORKFLOWS:
            document, digest = definition(name, status_type)
            await store.register_definition(name, digest, document, datetime.now(UTC))


# ---------------------------------------------------------------------------- the data

RUNNING, PAUSED, INITIATED = 2, 3, 1
COMPLETED, CANCELLED, DATA_DELETED = 5, 4, 6

Row = tuple[str, str, str, int, int, bytes, int, int, int, str, str, tuple[int, ...]]
"""workflow, foreign ID, run ID, run state, status, object, created_at (us), updated_at
(us), version, run state reason, status description, statuses reached."""


def customers_of(runs: int) -> int:
    return max(1, runs // 4)


def prefix_of(runs: int) -> str:
    """A foreign ID prefix of 100 customers (so of about 400 runs)."""
    return f"customer-{min(123, (customers_of(runs) - 1) // 100):05d}"


def generate(runs: int, end_us: int, seed: int = 20240601) -> Iterator[Row]:
    """The runs, oldest first. Run ``i`` is customer ``i % customers``'s; each customer has
    two runs per workflow, and only the newer may be active (Initiated, Running, Paused)."""
    rng = random.Random(seed)
    customers = customers_of(runs)
    span = DAYS * 86_400_000_000
    start = end_us - span
    step = span / runs
    jitter = max(1, int(step))
    for i in range(runs):
        c = i % customers
        k = i // customers
        w = k % 2
        names = NAMES[w]
        created = start + int(i * step) + rng.randrange(jitter)
        updated = created + rng.randrange(1_000_000, 3_600_000_000)
        roll = rng.random()
        newest = i + 2 * customers >= runs
        reason = ""
        if newest and roll < 0.45:
            state, status = RUNNING, rng.randint(1, 4)
        elif newest and roll < 0.55:
            state, status, reason = PAUSED, rng.randint(1, 4), "paused by an operator"
        elif newest and roll < 0.6:
            state, status = INITIATED, 1
        else:
            roll = rng.random()
            if roll < 0.85:
                state, status = COMPLETED, 5
            elif roll < 0.95:
                state, status, reason = CANCELLED, rng.randint(1, 4), "the customer asked"
            else:
                state, status, reason = DATA_DELETED, 5, "GDPR request"
        fid = f"customer-{c:07d}"
        items, total = rng.randint(1, 9), rng.randint(100, 99_999) / 100
        obj = f'{{"customer":"{fid}","items":{items},"total":{total}}}'
        yield (
            WORKFLOWS[w][0],
            fid,
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            state,
            status,
            obj.encode(),
            created,
            updated,
            3,
            reason,
            names[status],
            tuple(range(1, status + 1)),
        )


# ---------------------------------------------------------------------------- SQLite


def sqlite_loaded(path: str) -> tuple[int, float] | None:
    """``(runs, load_s)`` of a complete earlier load of ``path``, else ``None``."""
    if not os.path.exists(path):
        return None
    try:
        conn = sqlite3.connect(path)
        try:
            row = conn.execute("SELECT runs, load_s FROM bench_meta").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return (int(row[0]), float(row[1])) if row else None


def sqlite_remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


async def sqlite_load(path: str, runs: int) -> float:
    sqlite_remove(path)
    t0 = time.perf_counter()
    url = f"sqlite:///{path}"
    await conveyor.migrate(url)
    await register(url)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -524288")  # 512 MiB
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'records' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        end_us = int(time.time() * 1_000_000)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO records (workflow_name, foreign_id, run_id, run_state, status, "
            "object, created_at, updated_at, version, run_state_reason, status_description, "
            "trace_origin, reached) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)",
            (
                (*r[:11], ",".join(map(str, r[11])))
                for r in progress(generate(runs, end_us), runs, "sqlite records")
            ),
        )
        conn.execute("COMMIT")
        log(f"sqlite: {runs} records in {time.perf_counter() - t0:.1f}s; history")
        conn.execute(
            "INSERT INTO history (run_id, version, status, run_state, reason, at) "
            "WITH v(n) AS (VALUES (1), (2), (3)) "
            "SELECT run_id, n, "
            "CASE n WHEN 1 THEN 1 WHEN 2 THEN max(1, status - 1) ELSE status END, "
            "CASE n WHEN 3 THEN run_state ELSE 2 END, "
            "CASE n WHEN 3 THEN run_state_reason ELSE '' END, "
            "CASE n WHEN 1 THEN created_at WHEN 2 THEN (created_at + updated_at) / 2 "
            "ELSE updated_at END "
            "FROM records, v ORDER BY run_id, n"
        )
        log(f"sqlite: history in {time.perf_counter() - t0:.1f}s; indexes")
        for _, sql in indexes:
            conn.execute(sql)
        log(f"sqlite: indexes in {time.perf_counter() - t0:.1f}s; analyze")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode = WAL")
        load_s = time.perf_counter() - t0
        conn.execute("CREATE TABLE bench_meta (runs INTEGER NOT NULL, load_s REAL NOT NULL)")
        conn.execute("INSERT INTO bench_meta VALUES (?, ?)", (runs, load_s))
    finally:
        conn.close()
    return load_s


def sqlite_facts(path: str, sample: int) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        (rows,) = conn.execute("SELECT count(*) FROM records").fetchone()
        (history,) = conn.execute("SELECT count(*) FROM history").fetchone()
        low, high = conn.execute("SELECT min(seq), max(seq) FROM records").fetchone()
        seqs = random.Random(7).sample(range(low, high + 1), min(sample, high - low + 1))
        marks = ",".join("?" * len(seqs))
        ids = [
            r[0] for r in conn.execute(f"SELECT run_id FROM records WHERE seq IN ({marks})", seqs)
        ]
    finally:
        conn.close()
    random.Random(8).shuffle(ids)
    return {"rows": rows, "history_rows": history, "sample": ids}


# ---------------------------------------------------------------------------- PostgreSQL


def pg_name(table: str) -> str:
    return f'{PG_SCHEMA}."{PG_PREFIX}{table}"'


def pg_store_url(url: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}schema={PG_SCHEMA}&table_prefix={PG_PREFIX}"


async def pg_loaded(url: str) -> tuple[int, float] | None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        if await conn.fetchval("SELECT to_regclass($1)", pg_name("meta")) is None:
            return None
        row = await conn.fetchrow(f"SELECT runs, load_s FROM {pg_name('meta')}")
    finally:
        await conn.close()
    return (int(row["runs"]), float(row["load_s"])) if row else None


async def pg_drop(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for table in PG_TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS {pg_name(table)}")
    finally:
        await conn.close()


async def pg_load(url: str, runs: int) -> float:
    import asyncpg

    await pg_drop(url)
    t0 = time.perf_counter()
    store_url = pg_store_url(url)
    await conveyor.migrate(store_url)
    await register(store_url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SET synchronous_commit = off")
        rebuild: list[str] = []
        for table in ("records", "history"):
            name = pg_name(table)
            constraints = await conn.fetch(
                "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
                "WHERE conrelid = $1::regclass AND contype IN ('p', 'u')",
                name,
            )
            indexes = await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 "
                "AND tablename = $2 AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint WHERE conrelid = $3::regclass)",
                PG_SCHEMA,
                PG_PREFIX + table,
                name,
            )
            for i in indexes:
                await conn.execute(f'DROP INDEX {PG_SCHEMA}."{i["indexname"]}"')
                rebuild.append(i["indexdef"])
            for c in constraints:
                await conn.execute(f'ALTER TABLE {name} DROP CONSTRAINT "{c["conname"]}"')
                rebuild.append(f'ALTER TABLE {name} ADD CONSTRAINT "{c["conname"]}" {c["def"]}')
        end_us = int(time.time() * 1_000_000)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        us = timedelta(microseconds=1)
        await conn.copy_records_to_table(
            PG_PREFIX + "records",
            schema_name=PG_SCHEMA,
            columns=[
                "workflow_name",
                "foreign_id",
                "run_id",
                "run_state",
                "status",
                "object",
                "created_at",
                "updated_at",
                "version",
                "run_state_reason",
                "status_description",
                "trace_origin",
                "reached",
            ],
            records=(
                (*r[:6], epoch + r[6] * us, epoch + r[7] * us, *r[8:11], "", list(r[11]))
                for r in progress(generate(runs, end_us), runs, "postgres records")
            ),
        )
        log(f"postgres: {runs} records in {time.perf_counter() - t0:.1f}s; history")
        await conn.execute(
            f"INSERT INTO {pg_name('history')} (run_id, version, status, run_state, reason, at) "
            "SELECT run_id, n, "
            "CASE n WHEN 1 THEN 1 WHEN 2 THEN greatest(1, status - 1) ELSE status END, "
            "CASE n WHEN 3 THEN run_state ELSE 2 END, "
            "CASE n WHEN 3 THEN run_state_reason ELSE '' END, "
            "CASE n WHEN 1 THEN created_at WHEN 2 THEN created_at + (updated_at - created_at) / 2 "
            "ELSE updated_at END "
            f"FROM {pg_name('records')} CROSS JOIN generate_series(1, 3) AS v(n)"
        )
        log(f"postgres: history in {time.perf_counter() - t0:.1f}s; indexes and keys")
        for sql in rebuild:
            await conn.execute(sql)
        log(f"postgres: indexes in {time.perf_counter() - t0:.1f}s; vacuum analyze")
        for table in ("records", "history"):
            await conn.execute(f"VACUUM (ANALYZE) {pg_name(table)}")
        load_s = time.perf_counter() - t0
        await conn.execute(
            f"CREATE TABLE {pg_name('meta')} (runs bigint NOT NULL, load_s float8 NOT NULL)"
        )
        await conn.execute(f"INSERT INTO {pg_name('meta')} VALUES ($1, $2)", runs, load_s)
    finally:
        await conn.close()
    return load_s


async def pg_facts(url: str, sample: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval(f"SELECT count(*) FROM {pg_name('records')}")
        history = await conn.fetchval(f"SELECT count(*) FROM {pg_name('history')}")
        low = await conn.fetchval(f"SELECT min(seq) FROM {pg_name('records')}")
        high = await conn.fetchval(f"SELECT max(seq) FROM {pg_name('records')}")
        seqs = random.Random(7).sample(range(low, high + 1), min(sample, high - low + 1))
        found = await conn.fetch(
            f"SELECT run_id FROM {pg_name('records')} WHERE seq = ANY($1::bigint[])", seqs
        )
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    ids = [r["run_id"] for r in found]
    random.Random(8).shuffle(ids)
    return {"rows": rows, "history_rows": history, "sample": ids, "server": version}


# ---------------------------------------------------------------------------- measuring


def progress(rows: Iterator[Row], total: int, what: str) -> Iterator[Row]:
    every = max(1, total // 10)
    t0 = time.perf_counter()
    for i, row in enumerate(rows, 1):
        yield row
        if i % every == 0:
            log(f"{what}: {i}/{total} ({time.perf_counter() - t0:.1f}s)")


def shapes(runs: int, sample: Sequence[str]) -> list[dict[str, Any]]:
    prefix = prefix_of(runs)
    return [
        {"name": "first_page", "path": f"/api/runs?limit={PAGE}", "check": {"size": PAGE}},
        {
            "name": "by_status",
            "path": f"/api/runs?workflow=orders&status=PACKED&limit={PAGE}",
            "check": {"size": PAGE, "workflow": "orders", "status_name": "PACKED"},
        },
        {
            "name": "by_prefix",
            "path": f"/api/runs?foreign_id_prefix={quote(prefix)}&limit={PAGE}",
            "check": {"size": PAGE, "prefix": prefix},
        },
        {
            "name": "after_cursor",
            "path": f"/api/runs?limit={PAGE}",
            "follow": FOLLOW,
            "check": {"size": PAGE},
        },
        {
            "name": "history",
            "paths": [f"/api/runs/{quote(run_id)}/history" for run_id in sample],
            "check": {"history": 3},
        },
    ]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(rank(0.90), 2),
        "p99_ms": round(rank(0.99), 2),
    }


def client(spec: dict[str, Any]) -> dict[str, Any]:
    """The client process: time each shape's requests, check every response."""
    import httpx

    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {spec['token']}"}
    with httpx.Client(base_url=spec["base"], headers=headers, timeout=60.0) as http:

        def get(path: str) -> tuple[float, Any]:
            t0 = time.perf_counter()
            response = http.get(path)
            body = response.content
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != 200:
                raise SystemExit(f"GET {path}: {response.status_code} {body[:300]!r}")
            return elapsed, json.loads(body)

        for shape in spec["shapes"]:
            n = spec["requests"]
            if "paths" in shape:
                paths = shape["paths"]
                if len(paths) < n + WARMUP:
                    raise SystemExit(f"{shape['name']}: a sample of {len(paths)} is too small")
            else:
                path = shape["path"]
                if "follow" in shape:
                    for _ in range(shape["follow"]):
                        cursor = get(path)[1]["cursor"]
                        if cursor is None:
                            raise SystemExit("the run list ended before the cursor's page")
                        path = f"{shape['path']}&cursor={quote(cursor)}"
                paths = [path] * (n + WARMUP)
            samples: list[float] = []
            for i, p in enumerate(paths[: n + WARMUP]):
                elapsed, doc = get(p)
                check(shape, p, doc)
                if i >= WARMUP:
                    samples.append(elapsed)
            out[shape["name"]] = percentiles(samples)
            print(f"[ui client] {shape['name']}: {out[shape['name']]}", file=sys.stderr)
    return out


def check(shape: dict[str, Any], path: str, doc: Any) -> None:
    want = shape["check"]
    if "history" in want:
        if len(doc["history"]) != want["history"]:
            raise SystemExit(f"GET {path}: {len(doc['history'])} history entries")
        return
    runs = doc["runs"]
    if len(runs) != want["size"]:
        raise SystemExit(f"GET {path}: {len(runs)} runs, expected {want['size']}")
    for r in runs:
        if "workflow" in want and r["workflow"] != want["workflow"]:
            raise SystemExit(f"GET {path}: a run of {r['workflow']}")
        if "status_name" in want and r["status_name"] != want["status_name"]:
            raise SystemExit(f"GET {path}: a run at {r['status_name']}")
        if "prefix" in want and not r["foreign_id"].startswith(want["prefix"]):
            raise SystemExit(f"GET {path}: foreign ID {r['foreign_id']}")
    created = [r["created_at"] for r in runs]
    if created != sorted(created, reverse=True):
        raise SystemExit(f"GET {path}: not newest first")


async def serve_and_measure(
    store_url: str, runs: int, requests: int, sample: list[str], nodelay: bool
) -> Any:
    from conveyor.web._serve import UIServer

    token = secrets.token_urlsafe(24)
    async with conveyor.connect(store_url) as backend:
        server = UIServer(backend.record_store, host="127.0.0.1", port=0, token=token)
        if nodelay:
            server._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await server.start()
        try:
            spec = {
                "base": server.url.rstrip("/"),
                "token": token,
                "requests": requests,
                "shapes": shapes(runs, sample),
            }
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                SCRIPT,
                "--client",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            out, _ = await proc.communicate(json.dumps(spec).encode())
            if proc.returncode != 0:
                raise SystemExit(f"the client process failed ({proc.returncode})")
            return json.loads(out)
        finally:
            await server.stop()


async def bench_store(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    runs = args.runs
    sample_size = args.requests + WARMUP
    result: dict[str, Any] = {}
    if kind == "sqlite":
        path = args.sqlite_path
        kept = sqlite_loaded(path)
        if kept is not None and kept[0] == runs:
            log(f"sqlite: reusing {path} ({runs} runs)")
            load_s, reused = kept[1], True
        else:
            log(f"sqlite: loading {runs} runs into {path}")
            load_s, reused = await sqlite_load(path, runs), False
        facts = sqlite_facts(path, sample_size)
        store_url = f"sqlite:///{path}"
        result["server"] = f"SQLite {sqlite3.sqlite_version}"
    else:
        kept = await pg_loaded(args.pg_url)
        if kept is not None and kept[0] == runs:
            log(f"postgres: reusing {PG_SCHEMA}.{PG_PREFIX}* ({runs} runs)")
            load_s, reused = kept[1], True
        else:
            log(f"postgres: loading {runs} runs into {PG_SCHEMA}.{PG_PREFIX}*")
            load_s, reused = await pg_load(args.pg_url, runs), False
        facts = await pg_facts(args.pg_url, sample_size)
        store_url = pg_store_url(args.pg_url)
        result["server"] = f"PostgreSQL {facts['server']}"
    log(f"{kind}: {facts['rows']} rows, {facts['history_rows']} history rows; measuring")
    timings = await serve_and_measure(
        store_url, runs, args.requests, facts["sample"], args.tcp_nodelay
    )
    result.update(
        rows=facts["rows"],
        history_rows=facts["history_rows"],
        load_s=round(load_s, 1),
        reused=reused,
        **timings,
    )
    result["slow"] = [name for name, t in timings.items() if t["p50_ms"] >= 100]
    if not args.keep:
        if kind == "sqlite":
            sqlite_remove(args.sqlite_path)
        else:
            await pg_drop(args.pg_url)
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bench": "ui",
        "runs": args.runs,
        "requests": args.requests,
        "tcp_nodelay": args.tcp_nodelay,
    }
    servers: list[str] = []
    for kind in args.stores.split(","):
        kind = kind.strip()
        if kind not in ("sqlite", "postgres"):
            raise SystemExit(f"unknown store {kind!r}: sqlite or postgres")
        out[kind] = await bench_store(kind, args)
        servers.append(out[kind].pop("server"))
    out["machine"] = ", ".join(
        [
            f"{platform.system()} {platform.machine()}",
            f"{os.cpu_count()} cpus",
            f"Python {platform.python_version()}",
            *servers,
        ]
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the data for a rerun")
    parser.add_argument(
        "--sqlite-path", default=os.path.join(tempfile.gettempdir(), "conveyor-bench-ui.db")
    )
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--tcp-nodelay", action="store_true", help="TCP_NODELAY on the server's socket"
    )
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client(json.load(sys.stdin))))
        return
    args.sqlite_path = os.path.abspath(args.sqlite_path)
    if args.runs < 4 * PAGE * (FOLLOW + 2):
        raise SystemExit(f"--runs must be at least {4 * PAGE * (FOLLOW + 2)}")
    t0 = time.perf_counter()
    out = asyncio.run(main_async(args))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
