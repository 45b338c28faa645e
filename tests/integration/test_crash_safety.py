"""Crash safety: worker processes on one backend, one killed with SIGKILL mid-flight.

Every run completes, no record version is written twice, and every execution of a step
that did not commit is explained by the kill: it was the killed process's; or its process
lost the step's role before the next execution (the killed process's roles are spread
again, so roles move); or it handled an event that was sent twice, because an outbox
relay was stopped between sending and deleting (killed, or its role moved) and the next
one sent it again (delivery is at least once).
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
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import RunState
from conveyor.abc import Event, Header, Lease, RecordFilter, ReportsPending, make_role, topic

from ._crash_worker import Parcel, Step, builder

ROOT = Path(__file__).resolve().parents[2]
RUNS = 300
DEADLINE = 120.0

pytestmark = [pytest.mark.processes, pytest.mark.timeout(240)]


class NoRoles:
    """A role scheduler that never grants a role: a workflow on it triggers and looks up
    runs but runs none of its processes (the workers do)."""

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[Lease]:
        await asyncio.get_running_loop().create_future()  # never done; cancelled at stop
        raise AssertionError(f"{role} was granted")  # pragma: no cover
        yield  # pragma: no cover

    async def close(self) -> None:
        pass


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


async def delivered(backend: conveyor.Backend, name: str, status: Step) -> list[Event]:
    """Every event still on the topic of runs entering ``status`` (kept for a minute)."""
    receiver = await backend.streamer.new_receiver(topic(name, status), f"audit-{status}")
    assert isinstance(receiver, ReportsPending)
    events: list[Event] = []
    while receiver.pending():
        events.extend(await receiver.recv(1000))
    await receiver.close()
    return events


async def completed(store: Any) -> int:
    done = await store.list(
        "crash test", limit=RUNS + 1, filter=RecordFilter(run_states=(RunState.COMPLETED,))
    )
    return len(done)


async def until(store: Any, count: int) -> None:
    """Poll the store with a deadline (other processes do the work; nothing can notify
    this one)."""
    deadline = time.monotonic() + DEADLINE
    while await completed(store) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {await completed(store)}/{count} runs completed")
        await asyncio.sleep(0.05)


async def run_crash_scenario(url: str, tmp_path: Path, options: dict[str, Any]) -> None:
    journal_dir = tmp_path / "journals"
    journal_dir.mkdir()
    async with conveyor.connect(url, **options) as backend:
        # This process only triggers: its workflow is granted no role, so runs no process.
        wf = builder(io.StringIO()).build(backend.streamer, backend.record_store, NoRoles())
        workers = [start_worker(url, journal_dir, options) for _ in range(3)]
        try:
            async with wf:
                run_ids = [await wf.trigger(f"parcel-{i}") for i in range(RUNS)]
            # Kill one worker while runs are in flight
            await until(backend.record_store, RUNS // 5)
            victim = workers[0]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            assert victim.stdin is not None
            victim.stdin.close()
            await until(backend.record_store, RUNS)
            runs = [await wf.lookup(r) for r in run_ids]
            sent = [
                (status, event)
                for status in (Step.RECEIVED, Step.CHECKED, Step.PACKED)
                for event in await delivered(backend, wf.name, status)
            ]
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
    for r in runs:
        assert r.run_state is RunState.COMPLETED, r
        assert r.status == Step.SENT
        assert r.meta.version == 4
        parcel = r.object
        assert isinstance(parcel, Parcel)
        assert len(parcel.committed_by) == 3, parcel
        for index, pid in enumerate(parcel.committed_by):
            committed[(r.run_id, index + 1)] = pid

    # Every execution that did not commit is explained by the kill
    executions: dict[tuple[str, int, int], list[tuple[int, int]]] = defaultdict(list)
    losses: list[tuple[int, int, str]] = []  # (pid, ns, role) of leases lost while held
    for journal in journal_dir.glob("journal-*.txt"):
        for line in journal.read_text().splitlines():
            kind, *fields = line.split()
            if kind == "step":
                run_id, at_status, at_version, by, when = fields
                executions[(run_id, int(at_status), int(at_version))].append((int(when), int(by)))
            else:
                role_name, by, when = fields
                losses.append((int(by), int(when), role_name))
    killed = victim.pid
    # Events per run and record version: a second one was sent again by a relay
    copies = Counter((e.foreign_id, int(e.headers[Header.RECORD_VERSION])) for _, e in sent)
    resent = {key for key, n in copies.items() if n > 1}

    def lost_the_role(pid: int, status: int, after: int, before: int) -> bool:
        consumer = make_role(wf.name, status, "consumer") + "-"
        return any(
            p == pid and after < ns < before and role.startswith(consumer) for p, ns, role in losses
        )

    repeated = 0
    for (run, status, version), attempts in executions.items():
        assert version == status, "each step runs on the version that reached its status"
        attempts.sort()
        # A lost role excuses an execution if lost before the next one (never the last)
        until_next = [ns for ns, _ in attempts[1:]] + [attempts[-1][0]]
        unexplained = [
            pid
            for (ns, pid), next_ns in zip(attempts, until_next, strict=True)
            if pid != killed
            and (run, version) not in resent
            and not lost_the_role(pid, status, ns, next_ns)
        ]
        # At most one execution needs no explanation: the one that committed
        assert unexplained in ([], [committed[(run, status)]]), (run, status, attempts, killed)
        repeated += len(attempts) > 1
    assert {k[:2] for k in executions} == set(committed), "every committed step was journaled"
    assert any(killed == pid for a in executions.values() for _, pid in a), "the victim worked"
    print(f"{repeated} steps were executed more than once; {len(resent)} events were sent twice")


async def test_sqlite_workers_survive_sigkill(tmp_path: Path) -> None:
    await run_crash_scenario(f"sqlite:///{tmp_path / 'crash.db'}", tmp_path, {})
