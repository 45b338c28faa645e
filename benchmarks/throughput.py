"""Throughput and latency of a 3-step workflow; prints one JSON line.

    python benchmarks/throughput.py [--runs 20000] [--latency-runs 2000]
                                    [--store memory | sqlite:///bench.db | postgresql://...]
                                    [--workers 1] [--shards 1] [--clients 1]
                                    [--events URL] [--roles URL] [--timeouts URL]

Throughput: ``--runs`` runs are triggered by ``--clients`` concurrent callers (each
triggers its share one after another, as a service's request handlers would) and the
clock stops when the last one has completed (counted from the run-state-change topic, as
``wait`` would see it, while the runs go); every run is then checked to have finished at
its expected version; ``cpu_ms_per_run`` is this process's CPU time (every thread) over
the measurement, per run. Latency: runs one at a time, trigger to ``wait(...)`` returning
at the terminal status.

``--events``, ``--roles`` and ``--timeouts`` take those parts from other URLs (a broker:
``redis://…``, ``nats://…``), as ``conveyor.connect(store, events=...)`` does.

``--workers N`` runs the workflow in N processes on the same backend: this process plus
N-1 worker processes (so the roles, and the work, spread across N processes). The clock
starts once this process runs its share of the roles (the worker processes, started
first, hold every role until then): a handover in the middle of the measurement would
make the figure part handover. Metrics are on (the default registry). ``--shards N`` runs
each step as N shards (its ``parallel_count``), which the roles spread like any other;
``step_shards_here`` says how many of them this process ran.

``--wait`` runs the peers' workload instead: N runs triggered at once in this process,
each awaited with ``wait`` (every returned run is checked at its final version), for
each N of ``--sizes`` in turn, ``--rounds`` times (sizes interleaved); it prints the
median runs/s per N, the ratio of the largest N to the smallest, and how many waits
returned from an event and how many from their first store read. Each measurement starts
with ``gc.collect()`` and ``gc.freeze()``, so the runs earlier rounds left in the store
are not scanned by the collector again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from prometheus_client import REGISTRY

import conveyor
from conveyor import AdapterError, Backend, Builder, Run, RunState, Workflow, WorkflowInProgress
from conveyor.abc import EventReceiver, Header, run_state_change_topic

PARTS: dict[str, str] = {}
"""The parts given as --events, --roles, --timeouts (the same in every process)."""
SHARDS = [1]
"""Each step's ``parallel_count`` (``--shards``, the same in every process)."""


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


def builder() -> Builder[Obj, Status]:
    b = Builder("bench", dict, Status)
    n = SHARDS[0]
    b.add_step(Status.CREATED, validate, Status.VALIDATED).with_options(parallel_count=n)
    b.add_step(Status.VALIDATED, enrich, Status.ENRICHED).with_options(parallel_count=n)
    b.add_step(Status.ENRICHED, finish, Status.DONE).with_options(parallel_count=n)
    return b


def build(backend: Backend) -> Workflow[Obj, Status]:
    return builder().build(
        backend.streamer,
        backend.record_store,
        backend.role_scheduler,
        timeout_store=backend.timeout_store,
    )


async def worker(url: str) -> None:
    """A worker process: run the workflow until the parent closes our stdin."""
    async with conveyor.connect(url, **PARTS) as backend:
        wf = build(backend)
        async with wf:
            print("ready", flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.read)


class Completions:
    """Which triggered runs (``triggered``) have completed, from the run-state-change
    events as they come (``read``); ``all_done`` is set once ``runs`` of them have."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.ids: set[str] = set()  # run IDs triggered
        self._seen: set[str] = set()  # run IDs whose completion came (a copy counts once)
        self._counted = 0  # run IDs in both
        self.all_done = asyncio.Event()
        if runs <= 0:
            self.all_done.set()

    def triggered(self, run_id: str) -> None:
        self.ids.add(run_id)
        if run_id in self._seen:  # completed before its trigger returned here
            self._count()

    def completed(self, run_id: str) -> None:
        if run_id not in self._seen:
            self._seen.add(run_id)
            if run_id in self.ids:
                self._count()

    def _count(self) -> None:
        self._counted += 1
        if self._counted == self.runs:
            self.all_done.set()

    async def read(self, receiver: EventReceiver) -> None:
        """Count the completions ``receiver`` hands out, until cancelled."""
        completed = str(int(RunState.COMPLETED))
        while True:
            try:
                events = await receiver.recv(1024)
            except AdapterError:  # the database is away (pg_restart.py restarts it): retry
                await asyncio.sleep(0.1)
                continue
            for event in events:
                if event.headers.get(Header.RUN_STATE) == completed:
                    self.completed(event.foreign_id)
                # acknowledged as a consumer would: a broker stops delivering to a receiver
                # with too many unacknowledged (NATS's max_ack_pending, 10,000 by default);
                # one that fails comes again, and a copy counts once
                with contextlib.suppress(AdapterError):
                    await receiver.ack(event)


async def throughput(
    wf: Workflow[Obj, Status], runs: int, clients: int, tag: str
) -> dict[str, float]:
    streamer = wf._engine.streamer
    done = await streamer.new_receiver(
        run_state_change_topic(wf.name), f"bench-completions-{tag}", stream_from_latest=True
    )
    tally = Completions(runs)

    async def client(first: int) -> None:
        for i in range(first, runs, clients):
            tally.triggered(await trigger(wf, f"{tag}-t-{i}", {"n": i}))

    start, cpu = time.perf_counter(), time.process_time()
    # Counted while the runs go, not after the last trigger: reading the topic after the
    # fact would add the broker's reading speed to the figure.
    counter = asyncio.create_task(tally.read(done))
    waiting = asyncio.create_task(tally.all_done.wait())
    try:
        await asyncio.gather(*(client(c) for c in range(clients)))
        await asyncio.wait({counter, waiting}, return_when=asyncio.FIRST_COMPLETED)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        if counter.done():  # it failed: say how
            counter.result()
    finally:
        for task in (counter, waiting):
            task.cancel()
        await asyncio.gather(counter, waiting, return_exceptions=True)
        await done.close()
    # Every run must have finished at the expected version (trigger + 3 steps).
    bad = []
    for run_id in tally.ids:
        r = await wf.record_store.lookup(run_id)
        if r.run_state is not RunState.COMPLETED or r.meta.version != 4:
            bad.append(r)
    if bad:
        raise SystemExit(f"{len(bad)} runs did not finish at version 4: {bad[0]}")
    return {
        "runs_per_s": runs / elapsed,
        "steps_per_s": 3 * runs / elapsed,
        "seconds": elapsed,
        "cpu_ms_per_run": 1000 * cpu / runs,
    }


async def trigger(wf: Workflow[Obj, Status], foreign_id: str, initial: Obj) -> str:
    """Trigger, retrying while the database is away, as a service would."""
    delay = 0.05
    retried = False
    while True:
        try:
            return await wf.trigger(foreign_id, initial=initial)
        except WorkflowInProgress:
            if not retried:
                raise
            # The attempt that failed in transit had committed: that run is ours.
            return (await wf.record_store.latest(wf.name, foreign_id)).run_id
        except AdapterError:
            retried = True
            await asyncio.sleep(delay)
            delay = min(2 * delay, 1.0)


async def latency(wf: Workflow[Obj, Status], runs: int, tag: str) -> dict[str, float]:
    samples: list[float] = []
    for i in range(runs):
        t0 = time.perf_counter()
        run_id = await wf.trigger(f"{tag}-l-{i}")
        await wf.wait(f"{tag}-l-{i}", run_id, Status.DONE)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "p50_latency_ms": statistics.median(samples),
        "p99_latency_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }


async def spread(wf: Workflow[Obj, Status], processes: int) -> None:
    """Wait until this process runs its share of the workflow's processes (the roles have
    spread over the ``processes`` processes, and the handovers are done): the figures are
    then the deployment's steady state, not a handover's."""
    share = len(wf.process_names()) // processes
    deadline = time.monotonic() + 60
    while True:
        running = wf._contexts()
        if len(running) >= share and not any(ctx.opening for ctx in running):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the roles did not spread over {processes} processes in 60 s")
        await asyncio.sleep(0.05)


async def measure(
    url: str, runs: int, clients: int, latency_runs: int, processes: int
) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    async with conveyor.connect(url, **PARTS) as backend:
        wf = build(backend)
        gc.freeze()
        async with wf:
            await spread(wf, processes)
            shards_here = sum(1 for ctx in wf._contexts() if _STEP_SHARD.search(ctx.name))
            await latency(wf, 20, f"{tag}-warm")
            tp = await throughput(wf, runs, clients, tag)
            lat = await latency(wf, latency_runs, tag)
    return {**tp, **lat, "step_shards_here": shards_here}


_STEP_SHARD = re.compile(r"^(validated|enriched|created)-consumer-\d+-of-\d+$")
"""A step consumer's process name (``step_shards_here``: how many this process runs)."""


def _waits_found(by: str) -> float:
    value = REGISTRY.get_sample_value(
        "workflow_waits_total", {"workflow_name": "bench", "found_by": by}
    )
    return value or 0.0


async def waits(wf: Workflow[Obj, Status], n: int, tag: str) -> dict[str, float]:
    """N runs triggered at once, each awaited with ``wait``."""

    async def one(i: int) -> Run[Obj, Status]:
        fid = f"{tag}-w-{i}"
        run_id = await wf.trigger(fid, initial={"n": i})
        return await wf.wait(fid, run_id, Status.DONE)

    events, store = _waits_found("event"), _waits_found("store")
    start = time.perf_counter()
    done = await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    bad = [r for r in done if r.run_state is not RunState.COMPLETED or r.meta.version != 4]
    if bad:
        raise SystemExit(f"{len(bad)} waits returned a run not at its final version: {bad[0]}")
    return {
        "runs_per_s": n / elapsed,
        "from_events": _waits_found("event") - events,
        "from_store": _waits_found("store") - store,
    }


async def measure_waits(url: str, sizes: list[int], rounds: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    per_size: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    async with conveyor.connect(url, **PARTS) as backend:
        wf = build(backend)
        gc.freeze()
        async with wf:
            await waits(wf, 200, f"{tag}-warm")
            for r in range(rounds):
                for n in sizes:
                    # Earlier rounds' runs stay in the store (all of them, in memory): move
                    # them out of the collector's way, so each measurement starts alike.
                    gc.collect()
                    gc.freeze()
                    per_size[n].append(await waits(wf, n, f"{tag}-{r}-{n}"))
    medians = {n: statistics.median(x["runs_per_s"] for x in per_size[n]) for n in sizes}
    return {
        "rounds": rounds,
        **{f"runs_per_s_n{n}": round(medians[n], 1) for n in sizes},
        f"ratio_n{sizes[-1]}_to_n{sizes[0]}": round(medians[sizes[-1]] / medians[sizes[0]], 3),
        **{
            f"waits_from_events_n{n}": int(sum(x["from_events"] for x in per_size[n]))
            for n in sizes
        },
        **{f"waits_from_store_n{n}": int(sum(x["from_store"] for x in per_size[n])) for n in sizes},
        "all_runs_per_s": {n: [round(x["runs_per_s"]) for x in per_size[n]] for n in sizes},
    }


def start_workers(url: str, n: int) -> list[subprocess.Popen[str]]:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                "--store",
                url,
                "--shards",
                str(SHARDS[0]),
                *(arg for part, at in PARTS.items() for arg in (f"--{part}", at)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for w in workers:
        assert w.stdout is not None
        if w.stdout.readline().strip() != "ready":
            raise SystemExit("a worker process failed to start")
    return workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--latency-runs", type=int, default=2_000)
    parser.add_argument("--store", default="memory")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--wait", action="store_true", help="the wait workload (see above)")
    parser.add_argument("--sizes", default="1000,10000", help="--wait: the Ns, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="--wait: measurements per N")
    parser.add_argument("--shards", type=int, default=1, help="each step's parallel_count")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for part in ("events", "roles", "timeouts"):
        parser.add_argument(f"--{part}", metavar="URL", help=f"the {part} on this URL")
    args = parser.parse_args()
    PARTS.update(
        {
            part: getattr(args, part)
            for part in ("events", "roles", "timeouts")
            if getattr(args, part)
        }
    )
    SHARDS[0] = args.shards
    url = "memory://" if args.store == "memory" else args.store
    if args.worker:
        asyncio.run(worker(url))
        return
    if args.wait:
        sizes = sorted(int(n) for n in args.sizes.split(","))
        figures = asyncio.run(measure_waits(url, sizes, args.rounds))
        print(
            json.dumps(
                {
                    "benchmark": "waits",
                    "store": url.split("://")[0],
                    **figures,
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                }
            )
        )
        return
    if args.workers > 1 and url.startswith("memory"):
        raise SystemExit("--workers > 1 needs a shared backend (sqlite:// or postgresql://)")
    workers = start_workers(url, args.workers - 1)
    try:
        figures = asyncio.run(
            measure(url, args.runs, max(1, args.clients), args.latency_runs, args.workers)
        )
    finally:
        for w in workers:
            assert w.stdin is not None
            w.stdin.close()
        for w in workers:
            w.wait(timeout=60)
    result = {
        "benchmark": "throughput",
        "store": url.split("://")[0],
        **{part: at.split("://")[0] for part, at in PARTS.items()},
        "workers": args.workers,
        "shards": args.shards,
        "clients": args.clients,
        "runs": args.runs,
        **{k: round(v, 3) for k, v in figures.items()},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
