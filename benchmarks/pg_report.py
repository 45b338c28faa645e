"""End to end on PostgreSQL against the machine's own ceiling; prints one JSON line.

    python benchmarks/pg_report.py [--admin-url postgresql://postgres@127.0.0.1/postgres]
                                   [--repeat 3] [--workers 1] [--clients 16] [--runs 20000]
                                   [--latency-runs 2000] [--skip-ceiling]

Creates a throw-away database, runs ``benchmarks/throughput.py --store postgresql://...``
``--repeat`` times on it (the full pipeline, metrics on, runs triggered by ``--clients``
concurrent callers, every run checked to finish at its expected version; the schema is
migrated by the first run), then
``benchmarks/pg_ceiling.py`` on the same server, and drops the database. Reports the
median of each figure and runs/s as a fraction of the ceiling: a three-step run is four
record writes (trigger and three steps), each the work of one pgbench transaction, so
the fraction is ``4 * runs_per_s / tps``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

HERE = Path(__file__).resolve().parent


def _database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run_json(args: list[str]) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, cwd=HERE.parent
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--latency-runs", type=int, default=2_000)
    parser.add_argument("--skip-ceiling", action="store_true")
    args = parser.parse_args()
    name = f"conveyor_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(args.admin_url, f'CREATE DATABASE "{name}"'))
    url = _database_url(args.admin_url, name)
    try:
        runs = []
        for i in range(args.repeat):
            store = f"{url}?migrate=true" if i == 0 else url
            figures = _run_json(
                [
                    str(HERE / "throughput.py"),
                    "--store",
                    store,
                    "--workers",
                    str(args.workers),
                    "--clients",
                    str(args.clients),
                    "--runs",
                    str(args.runs),
                    "--latency-runs",
                    str(args.latency_runs),
                ]
            )
            print(json.dumps(figures), file=sys.stderr, flush=True)
            runs.append(figures)
        ceiling = None
        if not args.skip_ceiling:
            ceiling = _run_json([str(HERE / "pg_ceiling.py"), "--url", url])
            print(json.dumps(ceiling), file=sys.stderr, flush=True)
    finally:
        asyncio.run(_admin(args.admin_url, f'DROP DATABASE "{name}" WITH (FORCE)'))

    def median(key: str) -> float:
        return float(statistics.median(float(str(r[key])) for r in runs))

    report: dict[str, object] = {
        "benchmark": "pg_report",
        "workers": args.workers,
        "clients": args.clients,
        "runs": args.runs,
        "repeat": args.repeat,
        "runs_per_s": round(median("runs_per_s"), 1),
        "steps_per_s": round(median("steps_per_s"), 1),
        "p50_latency_ms": round(median("p50_latency_ms"), 3),
        "p99_latency_ms": round(median("p99_latency_ms"), 3),
        "runs_per_s_each": [r["runs_per_s"] for r in runs],
        "p50_latency_ms_each": [r["p50_latency_ms"] for r in runs],
        "cpus": os.cpu_count(),
    }
    if ceiling is not None:
        tps = float(str(ceiling["tps"]))
        report.update(
            ceiling_tps=tps,
            ceiling_clients=ceiling["clients"],
            writes_per_s=round(4 * median("runs_per_s"), 1),
            fraction_of_ceiling=round(4 * median("runs_per_s") / tps, 3),
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
