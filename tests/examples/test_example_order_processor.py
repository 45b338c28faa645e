"""examples/order_processor.py: every branch ends where it should, and the hooks see it."""

from __future__ import annotations

import asyncio

import order_processor
from order_processor import PAYMENT_WINDOW, Basket, Order, Warehouse, build, pay

from conveyor import RunState
from conveyor.diagram import mermaid
from conveyor.testing import FakeClock, await_timeout_insert, run_until_idle, wait_for


async def test_each_branch_ends_at_its_status_with_its_hooks() -> None:
    clock = FakeClock()
    warehouse = Warehouse(stock={"mug": 3, "vase": 1})
    wf = build(warehouse, clock)
    async with wf, asyncio.timeout(20):
        ids = {
            "happy": await wf.trigger("happy", initial=Basket(sku="mug", quantity=2)),
            "none": await wf.trigger("none", initial=Basket(sku="lamp")),
            "declined": await wf.trigger("declined", initial=Basket(sku="mug")),
            "fragile": await wf.trigger("fragile", initial=Basket(sku="vase", fragile=True)),
        }
        await pay(wf, "happy", ids["happy"], paid=True)
        await wf.wait("happy", ids["happy"], Order.SHIPPED)
        await wf.callback("happy", Order.SHIPPED)
        await pay(wf, "declined", ids["declined"], paid=False)
        await pay(wf, "fragile", ids["fragile"], paid=True)
        paused = await wait_for(wf, "fragile", lambda r: r.run_state is RunState.PAUSED)
        assert "the packing machine cannot take vase" in paused.meta.run_state_reason
        await run_until_idle(wf)
        assert warehouse.alerts == [f"fragile: {paused.meta.run_state_reason}"]
        await wf.cancel(ids["fragile"], "refunded")

        ends = {
            fid: (await wf.wait(fid, run_id, Order.DELIVERED)) if fid == "happy" else None
            for fid, run_id in ids.items()
        }
        assert ends["happy"] is not None
        assert ends["happy"].object.tracking == "TRACK-happy"
        await run_until_idle(wf)
        states = {fid: (await wf.lookup(rid)) for fid, rid in ids.items()}
    assert {f: (r.status, r.run_state) for f, r in states.items()} == {
        "happy": (Order.DELIVERED, RunState.COMPLETED),
        "none": (Order.OUT_OF_STOCK, RunState.COMPLETED),
        "declined": (Order.PAYMENT_FAILED, RunState.COMPLETED),
        "fragile": (Order.PAID, RunState.CANCELLED),
    }
    assert sorted(warehouse.done) == [
        "declined: PAYMENT_FAILED",
        "fragile: cancelled (refunded)",
        "happy: DELIVERED",
        "none: OUT_OF_STOCK",
    ]
    assert warehouse.released == ["declined"]
    assert warehouse.stock == {"mug": 1, "vase": 0}  # the declined mug went back


async def test_an_unpaid_order_expires_after_the_payment_window_and_frees_its_stock() -> None:
    clock = FakeClock()
    warehouse = Warehouse(stock={"mug": 1})
    wf = build(warehouse, clock)
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("late", initial=Basket(sku="mug"))
        await await_timeout_insert(wf, "late", run_id, Order.AWAITING_PAYMENT)
        assert warehouse.stock == {"mug": 0}
        clock.advance(PAYMENT_WINDOW)
        run = await wf.wait("late", run_id, Order.PAYMENT_EXPIRED)
        await run_until_idle(wf)
    assert run.run_state is RunState.COMPLETED
    assert warehouse.released == ["late"]
    assert warehouse.stock == {"mug": 1}


def test_the_graph_has_ten_statuses() -> None:
    diagram = mermaid(order_processor.builder(Warehouse()))
    statuses = [s for s in Order if s is not Order.UNKNOWN]
    assert len(statuses) == 10
    assert all(f"\t{s.value}: " in diagram for s in statuses)
