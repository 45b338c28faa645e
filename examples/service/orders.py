"""The order workflow of the example service: reserve stock, request payment, wait for the
payment provider's webhook, ship.

    CREATED --reserve_stock--> RESERVED --request_payment--> AWAITING_PAYMENT
    AWAITING_PAYMENT --payment webhook--> PAID --ship--> SHIPPED
    AWAITING_PAYMENT --payment webhook--> PAYMENT_FAILED

Workers run it with ``conveyor worker orders:builder --store URL``; the API process
(``app.py``) builds the same workflow with ``workflow(backend)`` and uses it as a client.

Steps run at least once: a worker that crashes mid-step leaves the event unacknowledged and
the next worker runs the step again. So the side effects key on ``run.idempotency_key``
(the same for every delivery of one attempt), as a real payment provider's idempotency key
would. ``request_payment`` and ``ship`` also append a line per execution to
``$ORDERS_JOURNAL`` (when set), and ``request_payment`` waits for the file ``$ORDERS_GATE``
(when set) to exist before it returns: the example's test uses both to hold a step in
flight and count executions.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from conveyor import Backend, Builder, Run, Workflow


class Status(enum.IntEnum):
    UNKNOWN = 0  # 0 is reserved
    CREATED = 1
    RESERVED = 2
    AWAITING_PAYMENT = 3
    PAID = 4
    PAYMENT_FAILED = 5
    SHIPPED = 6


@dataclass
class Order:
    item: str = ""
    quantity: int = 1
    reservation: str = ""
    payment_request: str = ""
    paid: bool = False
    tracking: str = ""


def _journal(step: str, run: Run[Order, Status]) -> None:
    """Record one execution of ``step`` (one line: step, order ID, run ID, worker pid)."""
    path = os.environ.get("ORDERS_JOURNAL")
    if path:
        with Path(path).open("a") as journal:
            journal.write(f"{step} {run.foreign_id} {run.run_id} {os.getpid()}\n")


async def reserve_stock(run: Run[Order, Status]) -> Status:
    """An async step: ask the (pretend) inventory service to hold the items."""
    await asyncio.sleep(0)  # e.g. await inventory.reserve(item, quantity, key=...)
    run.object.reservation = f"rsv-{run.idempotency_key}"
    return Status.RESERVED


def request_payment(run: Run[Order, Status]) -> Status:
    """A plain ``def`` step (it runs in a worker thread): create a payment request at the
    provider, which later calls our webhook with the outcome."""
    _journal("request_payment", run)
    gate = os.environ.get("ORDERS_GATE")
    if gate:
        while not Path(gate).exists():
            time.sleep(0.01)
    run.object.payment_request = f"pay-{run.idempotency_key}"
    return Status.AWAITING_PAYMENT


def on_payment(run: Run[Order, Status], payload: bytes) -> Status:
    """The payment webhook: ``{"paid": true}`` or ``{"paid": false}``."""
    run.object.paid = bool(json.loads(payload).get("paid"))
    return Status.PAID if run.object.paid else Status.PAYMENT_FAILED


def ship(run: Run[Order, Status]) -> Status:
    """Hand the parcel to the carrier."""
    _journal("ship", run)
    run.object.tracking = f"trk-{run.run_id[:8]}"
    return Status.SHIPPED


builder = Builder("orders", Order, Status)
builder.add_step(Status.CREATED, reserve_stock, Status.RESERVED)
builder.add_step(Status.RESERVED, request_payment, Status.AWAITING_PAYMENT).with_options(
    parallel_count=2  # two shards: with two workers, each runs one
)
builder.add_callback(Status.AWAITING_PAYMENT, on_payment, Status.PAID, Status.PAYMENT_FAILED)
builder.add_step(Status.PAID, ship, Status.SHIPPED)


def workflow(backend: Backend) -> Workflow[Order, Status]:
    """The workflow on a backend from ``conveyor.connect(url)`` (what ``orders:builder``
    gives ``conveyor worker``; this factory is the place for ``build()`` options)."""
    return builder.build(
        backend.streamer,
        backend.record_store,
        backend.role_scheduler,
        timeout_store=backend.timeout_store,
    )
