"""Throughput and latency of a 3-step workflow; prints one JSON line.

    python benchmarks/throughput.py [--runs 20000] [--latency-runs 2000] [--store memory]

Throughput: ``--runs`` runs are triggered at once and the clock stops when the last one
has completed (counted from the run-state-change topic, as ``wait`` would see it); every
run is then checked to have finished at its expected version. Latency: runs one at a
time, trigger to ``wait(...)`` returning at the terminal status.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import gc
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from conveyor import Builder, Header, Run, RunState, Workflow, run_state_change_topic
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler


class Status(enum.IntEnum):
    UNKNOWN = 0
    CREATED = 1
    VALIDATED = 2
    ENRICHED = 3
    DONE = 4


Obj = dict[str, Any]


async def validate(run: Run[Obj, Status]) -> Status:
    run.object["valid"] = True
    return Status.VALIDATED


async def enrich(run: Run[Obj, Status]) -> Status:
    run.object["score"] = len(run.foreign_id)
    return Status.ENRICHED


async def finish(run: Run[Obj, Status]) -> Status:
    run.object["done"] = True
    return Status.DONE


def build(store: str) -> Workflow[Obj, Status]:
    if store != "memory":
        raise SystemExit(f"unsupported --store {store!r} (available: memory)")
    b = Builder("bench", dict, Status)
    b.add_step(Status.CREATED, validate, Status.VALIDATED)
    b.add_step(Status.VALIDATED, enrich, Status.ENRICHED)
    b.add_step(Status.ENRICHED, finish, Status.DONE)
    return b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())


async def throughput(wf: Workflow[Obj, Status], runs: int) -> dict[str, float]:
    streamer = wf._engine.streamer
    done = await streamer.new_receiver(
        run_state_change_topic(wf.name), "bench-completions", stream_from_latest=True
    )
    completed = str(int(RunState.COMPLETED))
    start = time.perf_counter()
    for i in range(runs):
        await wf.trigger(f"t-{i}", initial={"n": i})
    seen = 0
    while seen < runs:
        for event in await done.recv(1024):
            if event.headers.get(Header.RUN_STATE) == completed:
                seen += 1
    elapsed = time.perf_counter() - start
    await done.close()
    # Every run must have finished at the expected version (trigger + 3 steps).
    bad = [
        r
        for r in await wf.record_store.list("bench", limit=runs + 1)
        if r.run_state is not RunState.COMPLETED or r.meta.version != 4
    ]
    if bad:
        raise SystemExit(f"{len(bad)} runs did not finish at version 4: {bad[0]}")
    return {"runs_per_s": runs / elapsed, "steps_per_s": 3 * runs / elapsed, "seconds": elapsed}


async def latency(wf: Workflow[Obj, Status], runs: int) -> dict[str, float]:
    samples: list[float] = []
    for i in range(runs):
        t0 = time.perf_counter()
        run_id = await wf.trigger(f"l-{i}")
        await wf.wait(f"l-{i}", run_id, Status.DONE)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_latency_ms": statistics.median(samples),
        "p99_latency_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--latency-runs", type=int, default=2_000)
    parser.add_argument("--store", default="memory")
    args = parser.parse_args()
    wf = build(args.store)
    gc.freeze()
    async with wf:
        await latency(wf, 50)  # warm up
        tp = await throughput(wf, args.runs)
        lat = await latency(wf, args.latency_runs)
    result = {
        "benchmark": "throughput",
        "store": args.store,
        "runs": args.runs,
        **{k: round(v, 3) for k, v in tp.items()},
        **{k: round(v, 3) for k, v in lat.items()},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
