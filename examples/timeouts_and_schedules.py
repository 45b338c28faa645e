"""An order that expires if unpaid within 30 minutes, and a nightly report schedule.

Runs in a few milliseconds: a FakeClock stands in for business time.
"""

import asyncio
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from conveyor import Builder, Run, duration_timer
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from conveyor.testing import FakeClock, await_timeout_insert, run_until_idle, wait_for


class Order(enum.IntEnum):
    UNKNOWN = 0
    AWAITING_PAYMENT = 1
    PAID = 2
    EXPIRED = 3


@dataclass
class Cart:
    total: int = 0
    expired_at: str = ""


async def expire(run: Run[Cart, Order], now: datetime) -> Order:
    run.object.expired_at = now.isoformat()
    return Order.EXPIRED


def paid(run: Run[Cart, Order], payload: bytes) -> Order:
    return Order.PAID


b = Builder("orders", Cart, Order)
b.add_callback(Order.AWAITING_PAYMENT, paid, Order.PAID)
b.add_timeout(Order.AWAITING_PAYMENT, duration_timer(timedelta(minutes=30)), expire, Order.EXPIRED)


async def main() -> None:
    clock = FakeClock(datetime(2024, 1, 1, 9, 0, tzinfo=UTC))
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        clock=clock,
    )
    async with wf, asyncio.timeout(5):
        run_id = await wf.trigger("order-1", initial=Cart(total=42))
        await await_timeout_insert(wf, "order-1", run_id, Order.AWAITING_PAYMENT)
        clock.advance(timedelta(minutes=30))
        run = await wf.wait("order-1", run_id, Order.EXPIRED)
        print("order-1:", run.status.name, "at", run.object.expired_at)

        # A run every day at 02:00 UTC for the foreign ID "nightly" (cancel the task to stop)
        schedule = asyncio.create_task(wf.schedule("nightly", "0 2 * * *"))
        await run_until_idle(wf)  # the schedule is now sleeping until 02:00
        clock.set(datetime(2024, 1, 2, 2, 0, tzinfo=UTC))
        nightly = await wait_for(wf, "nightly", lambda run: True)
        print("nightly run created at", nightly.created_at.isoformat())
        schedule.cancel()


if __name__ == "__main__":
    asyncio.run(main())
