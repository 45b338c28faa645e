"""``conveyor demo``: orders flowing through a few worker processes on one SQLite file,
with the web UI over them.

The demo owns its signals: the first SIGINT or SIGTERM cancels what it is doing, so every
task it started ends (no stray "Task exception was never retrieved"), the UI stops, the
workflow stops, and the worker processes are told to stop and waited for; a second
signal kills the workers instead of waiting. The exit code is then 128 + the signal.
The workers run in their own process group, so a Ctrl-C at the terminal reaches only
the demo, which stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from .._connect import Backend, connect
from .._errors import RunEnded
from .._protocols import Order as ListOrder
from .._workflow import Workflow
from ._demo_workflow import Order, OrderStatus, order_builder

if TYPE_CHECKING:
    from ..web._serve import UIServer

__all__ = ["DemoOptions", "run_demo", "run_demo_worker"]

FINAL = {OrderStatus.SHIPPED, OrderStatus.REJECTED, OrderStatus.PAYMENT_TIMED_OUT}
SIGNALS = (signal.SIGINT, signal.SIGTERM)
WORKER_GRACE = 30.0
"""Seconds the workers get to stop after their stdin closes, before they are killed."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    db: Path
    workers: int = 3
    orders: int = 24
    payment_timeout: float = 2.0
    ui: bool = True
    ui_port: int = 0
    temporary: bool = False
    """``db`` is in a folder the demo removes at exit."""


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


@asynccontextmanager
async def _workers(url: str, n: int, payment_timeout: float) -> AsyncIterator[list[int]]:
    """``n`` worker processes (their pids) until the context ends; then they are stopped."""
    command = [sys.executable, "-m", "conveyor.cli", "demo-worker", "--store", url]
    procs: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(n):
            await _spawn(procs, *command, "--payment-timeout", str(payment_timeout))
        for p in procs:
            assert p.stdout is not None
            if (await p.stdout.readline()).strip() != b"ready":
                raise click.ClickException("a demo worker failed to start (see above)")
        yield [p.pid for p in procs]
    finally:
        await _stop(procs)


async def _spawn(procs: list[asyncio.subprocess.Process], *command: str) -> None:
    """Start a worker and add it to ``procs``, also when a signal cancels the wait (so
    that a process started meanwhile is stopped with the others)."""
    started = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            process_group=0,  # a Ctrl-C at the terminal is the demo's to handle
        )
    )
    try:
        await asyncio.shield(started)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            procs.append(await started)
        raise
    procs.append(started.result())


async def _stop(procs: list[asyncio.subprocess.Process]) -> None:
    """Close the workers' stdin and wait for them; kill them at the grace or a signal."""
    for p in procs:
        if p.stdin is not None:
            p.stdin.close()
    ended = asyncio.gather(*(p.wait() for p in procs))
    try:
        await asyncio.wait_for(asyncio.shield(ended), WORKER_GRACE)
    except BaseException as exc:  # the grace passed, or a second signal came
        for p in procs:
            if p.returncode is None:
                p.kill()
        await ended
        if not isinstance(exc, TimeoutError):
            raise


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
    try:
        with Live(console=console, refresh_per_second=10, transient=False) as live:
            while True:
                records = await wf.record_store.list(wf.name, limit=total + 10, order=ListOrder.ASC)
                counts = Counter(r.meta.status_description for r in records)
                live.update(_view(counts, total, started))
                if len(records) == total and all(r.status in FINAL for r in records):
                    break
                await asyncio.sleep(0.1)  # a display refresh, not a wait for an outcome
    finally:
        if not console.is_terminal:
            console.line()  # the last render ends without one
    return [wf._engine.runs.codec.decode(r.object) for r in records]


async def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo until its orders finish (and, with the UI, until a signal).

    Returns 0, or 128 + the number of the signal that stopped it.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received:
            console.print("stopping (a second Ctrl-C kills the workers)", highlight=False)
        received.append(signum)
        task.cancel()

    for signum in SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await _demo(options, console)
    except asyncio.CancelledError:
        if not received:
            raise
        while task.uncancel():
            pass
    finally:
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
    if received:
        console.print("stopped", highlight=False)
        return 128 + received[0]
    return 0


def _ui_server_class(console: Console) -> type[UIServer] | None:
    try:
        from ..web._serve import UIServer
    except ImportError as exc:
        console.print(
            f"no web UI: it needs conveyor's web extra (pip install 'conveyor[web]'): {exc}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        return None
    return UIServer


def _new_ui(serve: type[UIServer], backend: Backend, port: int) -> UIServer:
    try:
        return serve(
            backend.record_store,
            host="127.0.0.1",
            port=port,
            store_url=backend.url,
            title="conveyor demo",
        )
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve the UI on 127.0.0.1:{port}: {exc.strerror} (try another --ui-port)"
        ) from None


async def _demo(o: DemoOptions, console: Console) -> None:
    """Trigger orders, answer most payment callbacks, and watch them finish."""
    url = f"sqlite:///{o.db}"
    serve = _ui_server_class(console) if o.ui else None
    o = replace(o, ui=serve is not None)
    console.print(f"demo: {o.orders} orders in {o.db}", highlight=False, soft_wrap=True)
    async with connect(url):  # creates the schema before the workers open it
        pass
    async with connect(url) as backend:
        server = _new_ui(serve, backend, o.ui_port) if serve is not None else None
        try:
            async with _workers(url, o.workers - 1, o.payment_timeout) as pids:
                shown = ", ".join(str(p) for p in pids)
                console.print(
                    f"{o.workers} processes run the workflow: this one ({os.getpid()})"
                    + (f" and workers {shown}" if pids else ""),
                    highlight=False,
                    soft_wrap=True,
                )
                async with _build(backend, o.payment_timeout) as wf:
                    if server is not None:
                        await server.start()
                        _announce(console, server)
                    await _orders(wf, o, console)
                    if server is not None:
                        console.print(
                            f"all orders are finished; the UI keeps serving on {server.url} "
                            "until Ctrl-C",
                            highlight=False,
                            soft_wrap=True,
                        )
                        await server.wait()
        finally:
            if server is not None:
                await server.stop()


def _announce(console: Console, server: UIServer) -> None:
    from ._ui import announce

    announce(console, server.url, server.token, server.generated_token, server.local)


async def _orders(wf: Workflow[Order, OrderStatus], o: DemoOptions, console: Console) -> None:
    started = time.monotonic()
    rng = random.Random(7)
    async with asyncio.TaskGroup() as payers:  # each payer ends before the workflow stops
        for i in range(o.orders):
            quantity = rng.choice([1, 2, 3, 4, 9])  # 9 is rejected
            fid = f"order-{i:03d}"
            run_id = await wf.trigger(fid, initial=Order(item="widget", quantity=quantity))
            if rng.random() < 0.7:  # most customers pay; the rest time out
                payers.create_task(_pay_later(wf, fid, run_id, rng.uniform(0, 0.5)))
        finished = await _watch(wf, o.orders, console, started)
    _summary(finished, time.monotonic() - started, o, console)


def _summary(orders: list[Order], elapsed: float, o: DemoOptions, console: Console) -> None:
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
        f"{len(orders)} orders finished in {elapsed:.1f}s across {o.workers} processes",
        highlight=False,
        soft_wrap=True,
    )
    if not o.temporary or o.ui:
        until = " while the demo runs" if o.temporary else ""
        console.print(
            f"records are in {o.db}{until} (try: conveyor runs list --store sqlite:///{o.db})",
            highlight=False,
            soft_wrap=True,
        )
