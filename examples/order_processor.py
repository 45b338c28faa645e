"""An order processor: ten statuses, failure branches, a payment timeout and hooks.

    CREATED --reserve_stock--> STOCK_RESERVED | OUT_OF_STOCK
    STOCK_RESERVED --request_payment--> AWAITING_PAYMENT
    AWAITING_PAYMENT --payment webhook (callback)--> PAID | PAYMENT_FAILED
    AWAITING_PAYMENT --30 minutes (timeout)--> PAYMENT_EXPIRED
    PAID --pack--> PACKED --ship--> SHIPPED --carrier webhook (callback)--> DELIVERED

The port of luno/workflow's ``_examples/orderprocessor``. ``pack`` fails for fragile items
(a packing machine that cannot take them): after two identical failures the run is paused
(``pause_after_err_count=2``) and the ``on_pause`` hook alerts the warehouse; an operator then
cancels it (``on_cancel``). Every completed order, delivered or not, goes through
``on_complete``, which releases the stock of orders that did not ship. ``main`` runs one order
down each branch under a ``FakeClock`` (for the payment timeout).
"""

import asyncio
import enum
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from conveyor import (
    Builder,
    Clock,
    Options,
    Run,
    RunState,
    StepResult,
    TypedRecord,
    Workflow,
    duration_timer,
)
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from conveyor.testing import FakeClock, await_timeout_insert, run_until_idle, wait_for

PAYMENT_WINDOW = timedelta(minutes=30)


class Order(enum.IntEnum):
    UNKNOWN = 0
    CREATED = 1
    STOCK_RESERVED = 2
    AWAITING_PAYMENT = 3
    PAID = 4
    PACKED = 5
    SHIPPED = 6
    DELIVERED = 7
    OUT_OF_STOCK = 8
    PAYMENT_FAILED = 9
    PAYMENT_EXPIRED = 10


@dataclass
class Basket:
    sku: str = ""
    quantity: int = 1
    fragile: bool = False
    payment_ref: str = ""
    tracking: str = ""


@dataclass
class Warehouse:
    """The systems the steps talk to, in memory."""

    stock: dict[str, int] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)


class Steps:
    """The workflow's functions, over the warehouse they change."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    async def reserve_stock(self, run: Run[Basket, Order]) -> Order:
        left = self.warehouse.stock.get(run.object.sku, 0)
        if left < run.object.quantity:
            return Order.OUT_OF_STOCK
        self.warehouse.stock[run.object.sku] = left - run.object.quantity
        return Order.STOCK_RESERVED

    async def request_payment(self, run: Run[Basket, Order]) -> Order:
        run.object.payment_ref = f"pay-{run.idempotency_key}"  # the provider's idempotency key
        return Order.AWAITING_PAYMENT

    def payment_webhook(self, run: Run[Basket, Order], payload: bytes) -> StepResult[Order]:
        body = json.loads(payload)
        if body.get("ref") != run.object.payment_ref:
            return run.skip()  # a webhook for another attempt
        return Order.PAID if body.get("paid") else Order.PAYMENT_FAILED

    async def payment_expired(self, run: Run[Basket, Order], now: datetime) -> Order:
        return Order.PAYMENT_EXPIRED

    async def pack(self, run: Run[Basket, Order]) -> Order:
        if run.object.fragile:
            raise RuntimeError(f"the packing machine cannot take {run.object.sku}")
        return Order.PACKED

    async def ship(self, run: Run[Basket, Order]) -> Order:
        run.object.tracking = f"TRACK-{run.foreign_id}"
        return Order.SHIPPED

    def delivered(self, run: Run[Basket, Order], payload: bytes) -> Order:
        return Order.DELIVERED

    async def alert(self, record: TypedRecord[Basket, Order]) -> None:
        self.warehouse.alerts.append(f"{record.foreign_id}: {record.meta.run_state_reason}")

    async def release(self, record: TypedRecord[Basket, Order]) -> None:
        self.warehouse.done.append(f"{record.foreign_id}: {record.status.name}")
        if record.status in (Order.PAYMENT_FAILED, Order.PAYMENT_EXPIRED):
            sku = record.object.sku
            self.warehouse.stock[sku] = self.warehouse.stock.get(sku, 0) + record.object.quantity
            self.warehouse.released.append(record.foreign_id)

    async def cancelled(self, record: TypedRecord[Basket, Order]) -> None:
        self.warehouse.done.append(
            f"{record.foreign_id}: cancelled ({record.meta.run_state_reason})"
        )


def builder(warehouse: Warehouse) -> Builder[Basket, Order]:
    s = Steps(warehouse)
    b = Builder("order processor", Basket, Order)
    b.add_step(Order.CREATED, s.reserve_stock, Order.STOCK_RESERVED, Order.OUT_OF_STOCK)
    b.add_step(Order.STOCK_RESERVED, s.request_payment, Order.AWAITING_PAYMENT)
    b.add_callback(Order.AWAITING_PAYMENT, s.payment_webhook, Order.PAID, Order.PAYMENT_FAILED)
    b.add_timeout(
        Order.AWAITING_PAYMENT,
        duration_timer(PAYMENT_WINDOW),
        s.payment_expired,
        Order.PAYMENT_EXPIRED,
    )
    b.add_step(Order.PAID, s.pack, Order.PACKED).with_options(
        pause_after_err_count=2, err_backoff=0.01
    )
    b.add_step(Order.PACKED, s.ship, Order.SHIPPED)
    b.add_callback(Order.SHIPPED, s.delivered, Order.DELIVERED)
    b.on_pause(s.alert)
    b.on_complete(s.release)
    b.on_cancel(s.cancelled)
    return b


def build(warehouse: Warehouse, clock: Clock | None = None) -> Workflow[Basket, Order]:
    return builder(warehouse).build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        clock=clock,
        default_options=Options(parallel_count=2),
    )


async def pay(wf: Workflow[Basket, Order], foreign_id: str, run_id: str, paid: bool) -> None:
    """What the payment provider's webhook handler does."""
    run = await wf.wait(foreign_id, run_id, Order.AWAITING_PAYMENT)
    body = {"ref": run.object.payment_ref, "paid": paid}
    await wf.callback(foreign_id, Order.AWAITING_PAYMENT, json.dumps(body).encode())


async def main() -> None:
    clock = FakeClock(datetime(2024, 5, 1, 10, 0, tzinfo=UTC))
    warehouse = Warehouse(stock={"mug": 5, "vase": 1, "lamp": 0})
    wf = build(warehouse, clock)
    async with wf, asyncio.timeout(10):
        orders = {
            "order-1": Basket(sku="mug", quantity=2),  # delivered
            "order-2": Basket(sku="lamp"),  # out of stock
            "order-3": Basket(sku="mug"),  # card declined
            "order-4": Basket(sku="mug"),  # never paid: expires
            "order-5": Basket(sku="vase", fragile=True),  # paused by pack, then cancelled
        }
        ids = {fid: await wf.trigger(fid, initial=basket) for fid, basket in orders.items()}

        await pay(wf, "order-1", ids["order-1"], paid=True)
        await wf.wait("order-1", ids["order-1"], Order.SHIPPED)
        await wf.callback("order-1", Order.SHIPPED)
        await pay(wf, "order-3", ids["order-3"], paid=False)
        await pay(wf, "order-5", ids["order-5"], paid=True)
        # Only order-4 still awaits payment: 30 minutes pass, and its timeout fires.
        await await_timeout_insert(wf, "order-4", ids["order-4"], Order.AWAITING_PAYMENT)
        clock.advance(PAYMENT_WINDOW)
        paused = await wait_for(wf, "order-5", lambda r: r.run_state is RunState.PAUSED)
        print("order-5 paused:", paused.meta.run_state_reason)
        await run_until_idle(wf)  # the on_pause hook has run
        await wf.cancel(ids["order-5"], "fragile: refunded by support")

        for fid in ids:
            run = await wait_for(wf, fid, lambda r: r.run_state.finished())
            print(f"{fid}: {run.status.name:<16} {run.run_state}")
        await wait_for(wf, "order-5", lambda r: len(warehouse.done) == len(orders))
    print("alerts:", warehouse.alerts)
    print("stock released for:", warehouse.released, "stock now:", warehouse.stock)


if __name__ == "__main__":
    asyncio.run(main())
