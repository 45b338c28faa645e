"""examples/service runs as its README says: an HTTP API in client mode and two workers.

The test starts ``uvicorn app:app`` and two ``conveyor worker orders:builder`` processes in
``examples/service``, all on one SQLite file, and drives the service over HTTP only. The
workflow's ``request_payment`` step journals every execution (with the worker's pid) and
blocks on a gate file, so the test can SIGTERM a worker while its step is in flight and
then check that the step's result was committed and that no step ran twice.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.processes, pytest.mark.timeout(180)]

SERVICE = Path(__file__).resolve().parent.parent / "examples" / "service"
BOUND = 30.0
"""Upper bound (seconds) for anything the test waits on; normally reached much sooner."""

ORDERS = [f"order-{i}" for i in range(10)]
UNPAID = "order-7"  # its webhook says paid=false
EARLY = "order-0"  # its first webhook comes before it awaits payment
PROCESSES = 7  # the workflow's background processes (outbox, 4 step shards, delete, retry)


class Process:
    """A subprocess in examples/service whose output (stdout and stderr) is collected."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.log: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.log.append(raw.decode(errors="replace").rstrip())

    @classmethod
    async def start(cls, name: str, env: dict[str, str], *args: str) -> Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=SERVICE,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(name, process)

    async def logged(self, pattern: str) -> re.Match[str]:
        """The first line matching ``pattern`` (waits for it; fails if the process exits)."""
        async with asyncio.timeout(BOUND):
            while True:
                for line in self.log:
                    found = re.search(pattern, line)
                    if found is not None:
                        return found
                if self.process.returncode is not None:
                    await self._reader
                    raise AssertionError(f"{self.name} exited: {self.text()}")
                await asyncio.sleep(0.01)

    async def exit_code(self) -> int:
        async with asyncio.timeout(BOUND):
            code = await self.process.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        async with asyncio.timeout(BOUND):
            await self.process.wait()
            await self._reader

    def text(self) -> str:
        return "\n".join(self.log)


async def until(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Wait (bounded) until ``check`` holds: a condition, looked at every 10 ms."""
    try:
        async with asyncio.timeout(BOUND):
            while True:
                result = check()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


_STATE = re.compile(r"^workflow_process_states\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)
_PROCESS = re.compile(r'process_name="([^"]+)"')


async def running(metrics_port: str) -> set[str]:
    """The processes a worker runs now (holding their roles), from its /metrics."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as http:
        ready = await http.get("/ready")
        assert ready.status_code == 200, ready.text
        body = (await http.get("/metrics")).text
    names = set()
    for found in _STATE.finditer(body):
        name = _PROCESS.search(found["labels"])
        if name is not None and float(found["value"]) == 2.0:  # State.RUNNING
            names.add(name.group(1))
    return names


async def settled(metrics_ports: list[str]) -> bool:
    """Every process runs on exactly one worker and the loads differ by at most one."""
    held = [await running(port) for port in metrics_ports]
    everyone = set().union(*held)
    loads = [len(h) for h in held]
    return len(everyone) == PROCESSES and sum(loads) == PROCESSES and max(loads) - min(loads) <= 1


def journal(path: Path) -> list[tuple[str, str, str, int]]:
    """(step, order ID, run ID, worker pid) for every step execution so far."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        step, order_id, run_id, pid = line.split()
        rows.append((step, order_id, run_id, int(pid)))
    return rows


async def test_the_order_service_survives_a_worker_drain_without_running_a_step_twice(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    journal_path = tmp_path / "journal"
    gate = tmp_path / "gate"
    env = {
        **os.environ,
        "ORDERS_STORE": url,
        "ORDERS_JOURNAL": str(journal_path),
        "ORDERS_GATE": str(gate),
    }
    processes: list[Process] = []
    try:
        # Given the schema, the API and two workers on one SQLite file (as the README says)
        migrate = await Process.start("migrate", env, "-m", "conveyor", "migrate", "--store", url)
        processes.append(migrate)
        assert await migrate.exit_code() == 0, migrate.text()
        api = await Process.start(
            "api", env, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "0"
        )
        processes.append(api)
        worker_args = ("-m", "conveyor", "worker", "orders:builder", "--store", url)
        workers: list[Process] = []
        for i in (1, 2):
            workers.append(
                await Process.start(f"worker-{i}", env, *worker_args, "--metrics-port", "0")
            )
            processes.append(workers[-1])
        port = (await api.logged(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")).group(1)
        metrics = [
            (await w.logged(r"worker started: .* metrics on 127\.0\.0\.1:(\d+)")).group(1)
            for w in workers
        ]
        pids = {worker.pid: worker for worker in workers}
        # And the roles have settled: the worker that started second has taken its share
        # over from the first, so both have steps to run when the orders come in.
        await until(lambda: settled(metrics), "the roles are spread over both workers")

        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=BOUND + 10
        ) as http:

            async def webhook(order_id: str, paid: bool) -> httpx.Response:
                return await http.post(f"/webhooks/payment/{order_id}", json={"paid": paid})

            async def get(order_id: str, run_id: str, **params: Any) -> dict[str, Any]:
                response = await http.get(f"/orders/{order_id}/{run_id}", params=params)
                assert response.status_code == 200, response.text
                body: dict[str, Any] = response.json()
                return body

            # When orders come in over HTTP
            runs: dict[str, str] = {}
            for order_id in ORDERS:
                response = await http.post("/orders", json={"order_id": order_id, "item": "book"})
                assert response.status_code == 201, response.text
                runs[order_id] = response.json()["run_id"]

            # And a worker is running request_payment (held on the gate)
            await until(
                lambda: any(pid in pids for *_, pid in journal(journal_path)),
                "a worker started request_payment",
            )
            victim = pids[journal(journal_path)[0][3]]
            survivor = next(w for w in workers if w is not victim)

            # Then a webhook that comes too early is refused with the reason (and retried
            # later, below), and one for an order nobody knows is a 404
            early = await webhook(EARLY, True)
            assert early.status_code == 409, early.text
            assert early.json()["detail"]["reason"] == "not_at_status"
            assert early.json()["detail"]["status"] in {"CREATED", "RESERVED"}
            unknown = await webhook("no-such-order", True)
            assert unknown.status_code == 404, unknown.text

            # When that worker gets SIGTERM, and its step may finish only afterwards
            victim.process.send_signal(signal.SIGTERM)
            await victim.logged("SIGTERM: draining")
            gate.touch()

            # Then it exits 0 once the results of the steps it started are committed
            assert await victim.exit_code() == 0, victim.text()
            assert "every started attempt is written; stopped" in victim.text()
            drained = [row for row in journal(journal_path) if row[3] == victim.pid]
            assert drained
            for _, order_id, run_id, _ in drained:
                order = await get(order_id, run_id)
                assert order["status"] == "AWAITING_PAYMENT", order

            # And every order awaits payment (the survivor took the rest over), is paid by
            # webhook (the early one's retry now succeeds) and completes
            for order_id, run_id in runs.items():
                order = await get(order_id, run_id, wait="AWAITING_PAYMENT", timeout=BOUND)
                assert order["order"]["payment_request"] == f"pay-{run_id}:2", order
                paid = await webhook(order_id, order_id != UNPAID)
                assert paid.status_code == 200, paid.text
                assert paid.json()["status"] in {"PAID", "PAYMENT_FAILED", "SHIPPED"}
            for order_id, run_id in runs.items():
                end = "PAYMENT_FAILED" if order_id == UNPAID else "SHIPPED"
                order = await get(order_id, run_id, wait=end, timeout=BOUND)
                assert order["status"] == end, order
                assert order["run_state"] == "Completed", order
            again = await webhook(EARLY, True)
            assert again.status_code == 409, again.text
            assert again.json()["detail"]["reason"] == "finished"

        # And no step ran twice: one request_payment per order, one ship per paid order
        rows = journal(journal_path)
        assert Counter((step, oid) for step, oid, _, _ in rows) == Counter(
            [("request_payment", oid) for oid in ORDERS]
            + [("ship", oid) for oid in ORDERS if oid != UNPAID]
        ), rows
        assert {(oid, rid) for _, oid, rid, _ in rows} == set(runs.items())
        assert {pid for *_, pid in rows} <= set(pids)

        # And the survivor and the API stop cleanly too
        survivor.process.send_signal(signal.SIGTERM)
        api.process.send_signal(signal.SIGTERM)
        assert await survivor.exit_code() == 0, survivor.text()
        # (uvicorn shuts down, then re-raises the signal it caught: -SIGTERM)
        assert await api.exit_code() in (0, -signal.SIGTERM), api.text()
        assert "Application shutdown complete." in api.text()
    finally:
        for process in processes:
            await process.kill()
        for process in processes:
            print(f"--- {process.name} (pid {process.pid}) ---\n{process.text()}")
