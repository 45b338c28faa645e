"""A PostgreSQL restart in the middle of a benchmark run; prints one JSON line.

    python benchmarks/pg_restart.py [--admin-url postgresql://postgres@127.0.0.1/postgres]
                                    [--runs 20000] [--clients 16] [--workers 1]
                                    [--after 2.0] [--restart-command "..."]

Creates a throw-away database and starts ``benchmarks/throughput.py`` on it (everything
on PostgreSQL: records, events, roles, timeouts). ``--after`` seconds later, while runs
are being triggered and stepped, it restarts the server with ``--restart-command``
(default: ``pg_ctlcluster`` on the one cluster under ``/etc/postgresql``), which drops
every connection. Triggers that fail while the server is away are retried by the
benchmark's callers, as a service would; the workers reconnect by themselves. The
benchmark then checks every run completed at its expected version (trigger + three steps:
a step applied twice, or lost, would show as another version) and this script reports
the figures with the restart's timing. It exits non-zero if any run did not complete.

This restarts the server for everyone using it: run it on a development machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pg_report import _admin, _database_url

HERE = Path(__file__).resolve().parent


def default_restart_command() -> str | None:
    root = Path("/etc/postgresql")
    versions = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    if len(versions) != 1:
        return None
    return f"pg_ctlcluster --skip-systemctl-redirect {versions[0]} main restart -m fast"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--after", type=float, default=2.0)
    parser.add_argument("--restart-command", default=default_restart_command())
    args = parser.parse_args()
    if not args.restart_command:
        raise SystemExit("no PostgreSQL cluster found: pass --restart-command")

    name = f"conveyor_restart_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(args.admin_url, f'CREATE DATABASE "{name}"'))
    url = _database_url(args.admin_url, name)
    try:
        started = time.perf_counter()
        bench = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "throughput.py"),
                "--store",
                f"{url}?migrate=true",
                "--runs",
                str(args.runs),
                "--clients",
                str(args.clients),
                "--workers",
                str(args.workers),
                "--latency-runs",
                "100",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE.parent,
        )
        time.sleep(args.after)
        if bench.poll() is not None:
            raise SystemExit("the benchmark finished before the restart: raise --runs")
        restart_at = time.perf_counter() - started
        subprocess.run(shlex.split(args.restart_command), check=True, capture_output=True)
        restart_seconds = time.perf_counter() - started - restart_at
        out, _ = bench.communicate(timeout=600)
        if bench.returncode != 0:
            raise SystemExit(f"the benchmark failed after the restart (exit {bench.returncode})")
        figures = json.loads(out.strip().splitlines()[-1])
    finally:
        asyncio.run(_admin(args.admin_url, f'DROP DATABASE "{name}" WITH (FORCE)'))
    print(
        json.dumps(
            {
                "benchmark": "pg_restart",
                "runs": args.runs,
                "clients": args.clients,
                "workers": args.workers,
                "restart_at_s": round(restart_at, 3),
                "restart_seconds": round(restart_seconds, 3),
                "all_completed_at_version_4": True,
                "seconds": figures["seconds"],
                "runs_per_s": figures["runs_per_s"],
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
