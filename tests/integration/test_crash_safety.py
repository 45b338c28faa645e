"""Crash safety: worker processes on one backend, one killed with SIGKILL mid-flight.

Every run completes, no record version is written twice, and a step executes twice only
where the first execution was by the killed process and never committed.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import RunState
from conveyor.abc import RecordFilter

from ._crash_worker import Parcel, Step, builder

ROOT = Path(__file__).resolve().parents[2]
RUNS = 300
DEADLINE = 120.0

pytestmark = pytest.mark.timeout(240)


def start_worker(url: str, journal_dir: Path, options: dict[str, Any]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration._crash_worker",
            url,
            str(journal_dir),
            json.dumps(options),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "ready", f"worker failed to start (said {line!r})"
    return proc


async def completed(store: Any) -> int:
    done = await store.list(
        "crash test", limit=RUNS + 1, filter=RecordFilter(run_states=(RunState.COMPLETED,))
    )
    return len(done)


async def until(store: Any, count: int) -> None:
    """Poll the store (other processes do the work; nothing can notify this one)."""
    deadline = time.monotonic() + DEADLINE
    while await completed(store) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {await completed(store)}/{count} runs completed")
        await asyncio.sleep(0.05)


async def run_crash_scenario(url: str, tmp_path: Path, options: dict[str, Any]) -> None:
    journal_dir = tmp_path / "journals"
    journal_dir.mkdir()
    async with conveyor.connect(url, **options) as backend:
        # This process only triggers: it writes runs without running any process.
        wf = builder(io.StringIO()).build(
            backend.streamer, backend.record_store, backend.role_scheduler
        )
        engine = wf._engine
        workers = [start_worker(url, journal_dir, options) for _ in range(3)]
        try:
            run_ids = []
            for i in range(RUNS):
                write = engine.writer.new_run(
                    wf.name, f"parcel-{i}", Step.RECEIVED, b'{"committed_by":[]}'
                )
                await engine.writer.write(write)
                run_ids.append(write.record.run_id)
            # Kill one worker while runs are in flight
            await until(backend.record_store, RUNS // 5)
            victim = workers[0]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            assert victim.stdin is not None
            victim.stdin.close()
            await until(backend.record_store, RUNS)
            records = [await backend.record_store.lookup(r) for r in run_ids]
        finally:
            for w in workers[1:]:
                assert w.stdin is not None
                w.stdin.close()
            for w in workers:
                w.wait(timeout=30)
                if w.stdout is not None:
                    w.stdout.close()

    # Every run completed at the expected version, each step committed exactly once
    committed: dict[tuple[str, int], int] = {}
    for r in records:
        assert r.run_state is RunState.COMPLETED, r
        assert r.status == Step.SENT
        assert r.meta.version == 4
        parcel = engine.runs.codec.decode(r.object)
        assert isinstance(parcel, Parcel)
        assert len(parcel.committed_by) == 3, parcel
        for index, pid in enumerate(parcel.committed_by):
            committed[(r.run_id, index + 1)] = pid

    # Re-executions only after the killed process's uncommitted attempts
    executions: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    for journal in journal_dir.glob("journal-*.txt"):
        for line in journal.read_text().splitlines():
            fields = line.split()
            executions[(fields[0], int(fields[1]), int(fields[2]))].append(int(fields[3]))
    killed = victim.pid
    repeated = 0
    for (run, status, version), pids in executions.items():
        assert version == status, "each step runs on the version that reached its status"
        winner = committed[(run, status)]
        others = [p for p in pids if p != winner]
        assert all(p == killed for p in others), (run, status, pids, winner, killed)
        assert pids.count(winner) == 1 or winner == killed, (run, status, pids)
        repeated += len(pids) > 1
    assert {k[:2] for k in executions} == set(committed), "every committed step was journaled"
    assert any(killed in pids for pids in executions.values()), "the victim did some work"
    print(f"{repeated} step executions were repeated after the kill")


async def test_sqlite_workers_survive_sigkill(tmp_path: Path) -> None:
    await run_crash_scenario(f"sqlite:///{tmp_path / 'crash.db'}", tmp_path, {})
