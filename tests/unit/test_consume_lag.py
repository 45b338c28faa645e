"""consume_lag: an event is held until it is that old by the workflow's clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from conveyor import Builder, Run, RunState
from conveyor.testing import run_until_idle

from ._support import WAIT, Doc, Env, Status

LAG = 3600.0


def lagged(calls: list[str]) -> Builder[Doc, Status]:
    async def step(run: Run[Doc, Status]) -> Status:
        calls.append(run.foreign_id)
        return Status.DONE

    b = Builder("lagged", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE).with_options(consume_lag=timedelta(hours=1))
    return b


async def test_an_event_is_not_consumed_before_the_lag_has_passed(env: Env) -> None:
    calls: list[str] = []
    wf = env.build(lagged(calls))
    async with wf:
        # Given a run triggered at t0
        rid = await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
        # Then it is idle but not done
        assert calls == []
        assert (await env.store.lookup(rid)).run_state is RunState.INITIATED

        # When the clock moves to just before t0 + lag
        env.clock.advance(LAG - 1)
        await run_until_idle(wf, timeout=WAIT)
        # Then still nothing
        assert calls == []

        # When it moves past t0 + lag
        env.clock.advance(1)
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    # Then the step ran, once, at business time t0 + lag
    assert calls == ["fid"]
    assert run.updated_at - run.created_at == timedelta(seconds=LAG)


async def test_the_lag_counts_from_each_events_own_time(env: Env) -> None:
    calls: list[str] = []
    wf = env.build(lagged(calls))
    async with wf:
        await wf.trigger("early")
        env.clock.advance(LAG / 2)
        late = await wf.trigger("late")
        env.clock.advance(LAG / 2)  # "early" is due, "late" is not
        await run_until_idle(wf, timeout=WAIT)
        assert calls == ["early"]
        env.clock.advance(LAG / 2)
        async with asyncio.timeout(WAIT):
            await wf.wait("late", late, Status.DONE)
    assert calls == ["early", "late"]


async def test_a_held_event_waits_on_the_workflows_clock(env: Env) -> None:
    calls: list[str] = []
    wf = env.build(lagged(calls))
    async with wf:
        await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
        assert env.clock.sleepers() >= 1
        assert env.clock.next_deadline() == env.clock.now() + timedelta(seconds=LAG)
    assert calls == []
