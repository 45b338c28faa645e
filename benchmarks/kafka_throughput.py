"""Throughput with events on Kafka beside PostgreSQL-with-outbox, in one run; one JSON line.

    python benchmarks/kafka_throughput.py [--pg postgresql://127.0.0.1:5432/test]
                                          [--runs 5000] [--latency-runs 300] [--rounds 1]
                                          [--clients 16] [--workers 1,2]
                                          [--setups pg-outbox,pg-kafka]
                                          [--kafka-options fetch_wait=0.005&linger=0]

Starts a librdkafka mock cluster (``tests/adapters/_kafka_mock.py``: three brokers on
loopback, **no disk and no replication**, so the figure is the client path's cost, not a
real cluster's), creates ``throughput.py``'s topics on it (3 partitions each) under a fresh
prefix per measurement, and runs ``throughput.py`` with records on PostgreSQL (a fresh
schema each, dropped after it) for ``pg-kafka`` (events on the mock cluster) and
``pg-outbox`` (events in PostgreSQL too), 1 and 2 worker processes, interleaved. Prints
the figures of each, every measurement's runs/s, and the ratio of pg-kafka to pg-outbox
(of the medians, ``ratio-wN``, and the median of the rounds' ratios,
``ratio-by-round-wN``). ``--clients`` callers trigger
the runs (16, as ``benchmarks/brokers.py``, whose figures the README's broker table
shows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent / "tests" / "adapters"), str(HERE.parent / "tests")]

import asyncpg  # noqa: E402
from _kafka_support import MockCluster, start_mock  # noqa: E402
from brokers import by_round  # noqa: E402  # this script's folder is on sys.path

from conveyor.adapters.kafka import escape  # noqa: E402

TOPICS = ("1", "2", "3", "4", "run-state-change", "delete")


def measure(
    args: argparse.Namespace, store: str, events: str | None, workers: int
) -> dict[str, float]:
    command = [sys.executable, str(HERE / "throughput.py"), "--store", store]
    command += ["--runs", str(args.runs), "--latency-runs", str(args.latency_runs)]
    command += ["--workers", str(workers), "--clients", str(args.clients)]
    if events:
        command += ["--events", events]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


async def _drop_schema(pg: str, schema: str) -> None:
    conn = await asyncpg.connect(pg)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def kafka_events(mock: MockCluster, options: str) -> str:
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    for t in TOPICS:
        mock.create(escape(f"bench-{t}", prefix), 3)
    return f"kafka://{mock.bootstrap}?prefix={prefix}" + (f"&{options}" if options else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--latency-runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--clients", type=int, default=16, help="as benchmarks/brokers.py")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--setups", default="pg-outbox,pg-kafka", help="comma-separated")
    parser.add_argument("--kafka-options", default="", help="added to the kafka:// query")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    setups = args.setups.split(",")
    mock = start_mock()
    results: dict[str, list[dict[str, float]]] = {}
    try:
        for _ in range(args.rounds):
            for workers in counts:
                for setup in setups:
                    schema = f"bk_{uuid.uuid4().hex[:8]}"
                    store = f"{args.pg}?schema={schema}&migrate=true"
                    if setup == "pg-outbox":
                        store += "&publish_events=false"
                    events = kafka_events(mock, args.kafka_options) if setup == "pg-kafka" else None
                    key = f"{setup}-w{workers}"
                    try:
                        results.setdefault(key, []).append(measure(args, store, events, workers))
                    finally:  # the runs it left stay out of the next measurements' way
                        asyncio.run(_drop_schema(args.pg, schema))
    finally:
        mock.stop()
    report: dict[str, object] = {}
    for key, figures in results.items():
        report[key] = {
            name: statistics.median(f[name] for f in figures)
            for name in figures[0]
            if isinstance(figures[0][name], int | float)
        } | {
            "all_runs_per_s": [round(f["runs_per_s"]) for f in figures],
            "all_step_shards_here": [f.get("step_shards_here") for f in figures],
        }
    for workers in counts:
        kafka = report.get(f"pg-kafka-w{workers}")
        outbox = report.get(f"pg-outbox-w{workers}")
        if kafka is None or outbox is None:
            continue
        assert isinstance(kafka, dict)
        assert isinstance(outbox, dict)
        rate = "runs_per_s"
        report[f"ratio-w{workers}"] = round(kafka[rate] / outbox[rate], 2)
        report[f"ratio-by-round-w{workers}"] = by_round(
            results[f"pg-kafka-w{workers}"], results[f"pg-outbox-w{workers}"]
        )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
