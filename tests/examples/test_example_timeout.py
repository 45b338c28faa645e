"""examples/timeout.py under a fake clock: a reset link expires 15 minutes after it was sent,
and not a moment before; a link used in time is never expired."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from timeout import VALID_FOR, Link, Reset, build

from conveyor import RunState
from conveyor.testing import FakeClock, await_timeout_insert, run_until_idle

START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


async def test_an_unused_link_expires_when_its_window_closes() -> None:
    clock = FakeClock(START)
    wf = build(clock)
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("r1", initial=Link(email="a@example.com"))
        timeout = await await_timeout_insert(wf, "r1", run_id, Reset.LINK_SENT)
        assert timeout.expire_at == START + VALID_FOR

        # One second before the window closes, nothing has fired
        clock.advance(VALID_FOR - timedelta(seconds=1))
        await run_until_idle(wf)
        assert (await wf.lookup(run_id)).status is Reset.LINK_SENT

        clock.advance(1)
        run = await wf.wait("r1", run_id, Reset.EXPIRED)
    assert run.run_state is RunState.COMPLETED
    assert run.object.expired_at == (START + VALID_FOR).isoformat()


async def test_a_link_used_in_time_resets_and_never_expires() -> None:
    clock = FakeClock(START)
    wf = build(clock)
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("r2")
        await await_timeout_insert(wf, "r2", run_id, Reset.LINK_SENT)
        clock.advance(timedelta(minutes=5))
        used = await wf.callback("r2", Reset.LINK_SENT)
        assert used.status is Reset.RESET

        clock.advance(timedelta(hours=1))  # long past the window
        await run_until_idle(wf)
        run = await wf.lookup(run_id)
    assert (run.status, run.run_state, run.version) == (Reset.RESET, RunState.COMPLETED, 3)
