"""``conveyor demo``: orders flowing through a few worker processes on one SQLite file."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from .._connect import Backend, connect
from .._errors import RunEnded
from .._protocols import Order as ListOrder
from .._workflow import Workflow
from ._demo_workflow import Order, OrderStatus, order_builder

__all__ = ["run_demo", "run_demo_worker"]

FINAL = {OrderStatus.SHIPPED, OrderStatus.REJECTED, OrderStatus.PAYMENT_TIMED_OUT}


def _build(backend: Backend, payment_timeout: float) -> Workflow[Order, OrderStatus]:
    return order_builder(payment_timeout).build(
        backend.streamer,
        backend.record_store,
        backend.role_scheduler,
        timeout_store=backend.timeout_store,
        pause_retry=None,
    )


async def run_demo_worker(url: str, payment_timeout: float) -> None:
    """A worker process: run the workflow until stdin closes."""
    async with connect(url) as backend, _build(backend, payment_timeout):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def _start_workers(url: str, n: int, payment_timeout: float) -> list[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "conveyor.cli", "demo-worker", "--store", url]
    procs = [
        subprocess.Popen(
            [*command, "--payment-timeout", str(payment_timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a demo worker failed to start")
    return procs


async def _pay_later(
    wf: Workflow[Order, OrderStatus], foreign_id: str, run_id: str, delay: float
) -> None:
    try:
        await wf.wait(foreign_id, run_id, OrderStatus.AWAITING_PAYMENT)
    except RunEnded:
        return  # rejected: nothing to pay
    await asyncio.sleep(delay)  # the customer takes a moment to pay
    await wf.callback(foreign_id, OrderStatus.AWAITING_PAYMENT, b'{"paid": true}')


def _view(counts: Counter[str], total: int, started: float) -> Group:
    done = sum(counts[s.name] for s in FINAL)
    table = Table(
        title=f"demo orders: {done}/{total} finished in {time.monotonic() - started:.1f}s"
    )
    table.add_column("status")
    table.add_column("runs", justify="right")
    for status in OrderStatus:
        if status is not OrderStatus.UNKNOWN:
            table.add_row(status.name, str(counts[status.name]))
    return Group(table, ProgressBar(total=total, completed=done))


async def _watch(
    wf: Workflow[Order, OrderStatus], total: int, console: Console, started: float
) -> list[Order]:
    with Live(console=console, refresh_per_second=10, transient=False) as live:
        while True:
            records = await wf.record_store.list(wf.name, limit=total + 10, order=ListOrder.ASC)
            counts = Counter(r.meta.status_description for r in records)
            live.update(_view(counts, total, started))
            if len(records) == total and all(r.status in FINAL for r in records):
                return [wf._engine.runs.codec.decode(r.object) for r in records]
            await asyncio.sleep(0.1)  # a display refresh, not a wait for an outcome


async def run_demo(
    db: Path, workers: int, orders: int, payment_timeout: float, console: Console
) -> None:
    """Trigger orders, answer most payment callbacks, and watch them finish."""
    url = f"sqlite:///{db}"
    async with connect(url) as backend:  # creates the schema
        pass
    procs = _start_workers(url, workers - 1, payment_timeout)
    try:
        async with connect(url) as backend:
            wf = _build(backend, payment_timeout)
            async with wf:
                started = time.monotonic()
                rng = random.Random(7)
                payers = []
                for i in range(orders):
                    quantity = rng.choice([1, 2, 3, 4, 9])  # 9 is rejected
                    fid = f"order-{i:03d}"
                    run_id = await wf.trigger(fid, initial=Order(item="widget", quantity=quantity))
                    if rng.random() < 0.7:  # most customers pay; the rest time out
                        payers.append(
                            asyncio.create_task(_pay_later(wf, fid, run_id, rng.uniform(0, 0.5)))
                        )
                finished = await _watch(wf, orders, console, started)
                await asyncio.gather(*payers)
                elapsed = time.monotonic() - started
    finally:
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in procs:
            p.wait(timeout=30)
    _summary(finished, elapsed, workers, db, console)


def _summary(orders: list[Order], elapsed: float, workers: int, db: Path, console: Console) -> None:
    per_process: Counter[str] = Counter()
    for order in orders:
        for note in order.handled_by:
            per_process[note.split(":", 1)[0]] += 1
    table = Table(title="work done per process (steps, callbacks and timeouts)")
    table.add_column("process id")
    table.add_column("handled", justify="right")
    for pid, n in sorted(per_process.items()):
        table.add_row(pid, str(n))
    console.print(table)
    console.print(
        f"{len(orders)} orders finished in {elapsed:.1f}s across {workers} processes; "
        f"records are in {db} (try: conveyor runs list --store sqlite:///{db})"
    )
