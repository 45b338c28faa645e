"""Events on a broker against PostgreSQL with its outbox, all in one run; prints one JSON line.

    python benchmarks/brokers.py [--repeat 3] [--runs 5000] [--latency-runs 500]
                                 [--clients 16] [--workers 1,2] [--wait]
                                 [--admin-url postgresql://postgres@127.0.0.1/postgres]
                                 [--redis redis://127.0.0.1:6379/0] [--nats nats://127.0.0.1:4222]

Setups, each with 1 and 2 worker processes (``--workers``), interleaved ``--repeat``
times, every run checked at its final version by ``benchmarks/throughput.py`` (each step
with ``--shards`` shards, its ``parallel_count``; each sample reports how many step shards
the measuring process ran, ``all_step_shards_here``):

- ``pg-outbox``: records and events on PostgreSQL, the store keeping an outbox that the
  relay sends to PostgreSQL's event log (``publish_events=false``): the baseline;
- ``pg-redis``: records on PostgreSQL, events on Redis Streams (the outbox relay sends them);
- ``pg-nats``: records on PostgreSQL, events on NATS JetStream;
- ``pg-rabbitmq``: records on PostgreSQL, events on RabbitMQ streams (``--rabbitmq``, the
  stream protocol; not in the default ``--setups``);
- ``redis``: everything on a private ``redis-server`` this script starts on a free port with
  ``appendonly yes``, ``appendfsync everysec`` in a temporary folder, a new one for each
  measurement.

Each measurement gets a fresh PostgreSQL database and fresh key and stream prefixes.
With ``--wait`` each setup also runs the wait workload (``throughput.py --wait``).
Ceilings measured in the same run: ``redis-benchmark`` doing XADD (16 clients) on the
private server, and a nats-py loop publishing to a JetStream stream and awaiting each ack
(16 concurrent publishers). Medians are reported, and each setup's runs/s as a fraction of
``pg-outbox`` with the same number of workers (``vs_pg_outbox``), and the median of that
fraction taken round by round (``vs_pg_outbox_by_round``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A ``redis-server`` of this script's own: AOF on, fsync every second."""
    folder = tempfile.mkdtemp(prefix="conveyor-bench-redis-")
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            folder,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the private redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _with_database(admin_url: str, name: str, query: str = "") -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", query, ""))


def throughput(
    args: argparse.Namespace, store: str, parts: dict[str, str], workers: int, wait: bool
) -> dict[str, float]:
    command = [sys.executable, str(HERE / "throughput.py"), "--store", store]
    command += ["--shards", str(args.shards)]
    for part, url in parts.items():
        command += [f"--{part}", url]
    if wait:
        command += ["--wait", "--rounds", "1"]
    else:
        command += [
            "--runs",
            str(args.runs),
            "--latency-runs",
            str(args.latency_runs),
            "--clients",
            str(args.clients),
            "--workers",
            str(workers),
        ]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def setup_urls(
    args: argparse.Namespace, name: str, database: str, private: str
) -> tuple[str, dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    pg = _with_database(args.admin_url, database, "migrate=true")
    if name == "pg-outbox":
        return pg + "&publish_events=false", {}
    if name == "pg-redis":
        return pg, {"events": f"{args.redis}?key_prefix=bench{tag}"}
    if name == "pg-nats":
        return pg, {"events": f"{args.nats}?prefix=bench{tag}"}
    if name == "pg-rabbitmq":
        return pg, {"events": f"{args.rabbitmq}?prefix=bench{tag}"}
    if name == "redis":
        return f"{private}?key_prefix=bench{tag}", {}
    raise ValueError(name)


async def _clean_up(store: str, parts: dict[str, str]) -> None:
    """Delete the keys and streams a measurement left on the shared servers."""
    from conveyor.adapters.redis import open_client

    for url in [store, *parts.values()]:
        if url.startswith("redis://"):
            client = open_client(url)
            try:
                await client.delete_prefix(client.options.keys.pattern)
            finally:
                await client.close()
        elif url.startswith("nats://"):
            prefix = urlsplit(url).query.partition("prefix=")[2].partition("&")[0]
            nc = await nats.connect(urlunsplit(urlsplit(url)._replace(query="")))
            try:
                js = nc.jetstream()
                for info in await js.streams_info():
                    if (info.config.name or "").startswith((f"{prefix}_", f"KV_{prefix}_")):
                        await js.delete_stream(info.config.name or "")
            finally:
                await nc.close()
        elif url.startswith("rabbitmq-stream://"):
            await _delete_rabbitmq_streams(url)


async def _delete_rabbitmq_streams(url: str) -> None:
    """Delete the streams (events and cursors) of ``throughput.py``'s topics."""
    from conveyor.adapters.rabbitmq import RabbitConnection, stream_name

    connection = RabbitConnection(url)
    prefix = connection.options.prefix
    topics = [f"bench-{t}" for t in ("1", "2", "3", "4", "run-state-change", "delete")]
    try:
        await connection.delete([stream_name(p, t) for t in topics for p in (prefix, f"{prefix}~")])
    finally:
        await connection.close()


def redis_ceiling(url: str, clients: int = 16, n: int = 100_000) -> float:
    port = str(urlsplit(url).port)
    out = subprocess.run(
        [
            *("redis-benchmark", "-p", port, "-c", str(clients), "-n", str(n), "-q"),
            *("XADD", "ceiling", "*", "foreign_id", "run-1", "type", "1", "headers", "{}"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = re.findall(r"([\d.]+) requests per second", out.stdout)
    return float(found[-1])


async def nats_ceiling(url: str, publishers: int = 16, n: int = 20_000) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = f"ceiling{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[f"{stream}.x"])
    try:
        each = n // publishers

        async def publish() -> None:
            for i in range(each):
                await js.publish(f"{stream}.x", b"run-1", headers={"Nats-Msg-Id": f"{i}"})

        start = time.perf_counter()
        await asyncio.gather(*(publish() for _ in range(publishers)))
        return each * publishers / (time.perf_counter() - start)
    finally:
        await js.delete_stream(stream)
        await nc.close()


def by_round(runs: list[dict[str, float]], base: list[dict[str, float]]) -> float:
    """The median over the rounds of a setup's runs/s against the baseline's in the same
    round: what the machine's drift from one round to the next leaves alone."""
    return round(
        statistics.median(
            r["runs_per_s"] / b["runs_per_s"] for r, b in zip(runs, base, strict=True)
        ),
        3,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--latency-runs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--shards", type=int, default=1, help="each step's parallel_count")
    parser.add_argument("--wait", action="store_true", help="the wait workload too")
    parser.add_argument("--setups", default="pg-outbox,pg-redis,pg-nats,redis")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--rabbitmq", default="rabbitmq-stream://guest:guest@127.0.0.1:5552/")
    args = parser.parse_args()
    setups = args.setups.split(",")
    counts = [int(w) for w in args.workers.split(",")]
    samples: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.repeat):
        for name in setups:
            shapes = [(w, False) for w in counts] + ([(1, True)] if args.wait else [])
            for workers, wait in shapes:
                database = f"bench_brokers_{uuid.uuid4().hex[:8]}"
                asyncio.run(_admin(args.admin_url, f'CREATE DATABASE "{database}"'))
                # a new private server for each measurement, so that each starts from an
                # empty data set and AOF, whatever ran before it
                with private_redis() as private:
                    store, parts = setup_urls(args, name, database, private)
                    try:
                        key = f"{name}{'-wait' if wait else ''}-w{workers}"
                        samples.setdefault(key, []).append(
                            throughput(args, store, parts, workers, wait)
                        )
                    finally:
                        asyncio.run(_admin(args.admin_url, f'DROP DATABASE "{database}"'))
                        asyncio.run(_clean_up(store, parts))
    with private_redis() as private:
        ceilings = {
            "redis_xadd_per_s": round(redis_ceiling(private)),
            "nats_publish_ack_per_s": round(asyncio.run(nats_ceiling(args.nats))),
        }
    report: dict[str, object] = {}
    for key, runs in samples.items():
        fields = [k for k, v in runs[0].items() if isinstance(v, int | float) and k != "cpus"]
        entry: dict[str, object] = {
            **{k: round(statistics.median(r[k] for r in runs), 3) for k in fields},
            "all_runs_per_s": [
                round(r.get("runs_per_s", r.get("runs_per_s_n1000", 0.0))) for r in runs
            ],
        }
        if "step_shards_here" in runs[0]:  # the wait workload does not report it
            entry["all_step_shards_here"] = [r["step_shards_here"] for r in runs]
        report[key] = entry
    for key, figures in list(report.items()):
        base_key = re.sub(r"^[a-z]+(-[a-z]+)?(?=(-wait)?-w)", "pg-outbox", key)
        base = report.get(base_key)
        if isinstance(figures, dict) and isinstance(base, dict) and "runs_per_s" in figures:
            figures["vs_pg_outbox"] = round(figures["runs_per_s"] / base["runs_per_s"], 3)
            figures["vs_pg_outbox_by_round"] = by_round(samples[key], samples[base_key])
    print(
        json.dumps(
            {
                "benchmark": "brokers",
                "repeat": args.repeat,
                "runs": args.runs,
                "clients": args.clients,
                "shards": args.shards,
                **report,
                **ceilings,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
