"""A password-reset link that expires: used within 15 minutes it resets, else it expires.

    REQUESTED --send_link--> LINK_SENT --use_link (callback)--> RESET
                             LINK_SENT --15 minutes (timeout)--> EXPIRED

The port of luno/workflow's ``_examples/timeout``. Timeouts need a timeout store and run by
the workflow's clock: ``main`` passes a ``FakeClock`` and moves it 15 minutes on, so the
example runs in milliseconds; in production leave ``clock`` out (the system clock).
``tests/examples/test_example_timeout.py`` tests both branches the same way.
"""

import asyncio
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from conveyor import Builder, Clock, Run, Workflow, duration_timer
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from conveyor.testing import FakeClock, await_timeout_insert

VALID_FOR = timedelta(minutes=15)


class Reset(enum.IntEnum):
    UNKNOWN = 0
    REQUESTED = 1
    LINK_SENT = 2
    RESET = 3
    EXPIRED = 4


@dataclass
class Link:
    email: str = ""
    expired_at: str = ""


async def send_link(run: Run[Link, Reset]) -> Reset:
    return Reset.LINK_SENT  # a real step would mail a signed link here


def use_link(run: Run[Link, Reset], payload: bytes) -> Reset:
    return Reset.RESET


async def expire(run: Run[Link, Reset], now: datetime) -> Reset:
    run.object.expired_at = now.isoformat()
    return Reset.EXPIRED


def builder() -> Builder[Link, Reset]:
    b = Builder("password reset", Link, Reset)
    b.add_step(Reset.REQUESTED, send_link, Reset.LINK_SENT)
    b.add_callback(Reset.LINK_SENT, use_link, Reset.RESET)
    b.add_timeout(Reset.LINK_SENT, duration_timer(VALID_FOR), expire, Reset.EXPIRED)
    return b


def build(clock: Clock | None = None) -> Workflow[Link, Reset]:
    return builder().build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        clock=clock,
    )


async def main() -> None:
    clock = FakeClock(datetime(2024, 3, 1, 9, 0, tzinfo=UTC))
    wf = build(clock)
    async with wf, asyncio.timeout(5):
        used = await wf.trigger("reset-1", initial=Link(email="ada@example.com"))
        await wf.wait("reset-1", used, Reset.LINK_SENT)
        run = await wf.callback("reset-1", Reset.LINK_SENT)
        print("reset-1:", run.status.name, "(link used in time)")

        unused = await wf.trigger("reset-2", initial=Link(email="bob@example.com"))
        await await_timeout_insert(wf, "reset-2", unused, Reset.LINK_SENT)
        clock.advance(VALID_FOR)  # 15 minutes of business time, at once
        run = await wf.wait("reset-2", unused, Reset.EXPIRED)
        print("reset-2:", run.status.name, "at", run.object.expired_at)


if __name__ == "__main__":
    asyncio.run(main())
