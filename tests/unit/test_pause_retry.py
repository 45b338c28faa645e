"""Pause retry: a paused run is resumed after ``pause_retry`` seconds of business time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from conveyor import Builder, Marker, Options, Run, RunState
from conveyor.testing import run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status

RETRY = 600.0


def pauses_once(calls: list[int]) -> Builder[Doc, Status]:
    async def step(run: Run[Doc, Status]) -> Status | Marker:
        calls.append(run.version)
        if len(calls) == 1:
            return run.pause("try again later")
        return Status.DONE

    b = Builder("pause-retry", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    return b


async def test_a_paused_run_is_resumed_after_pause_retry_not_before(env: Env) -> None:
    calls: list[int] = []
    wf = env.build(pauses_once(calls), pause_retry=RETRY)
    async with wf:
        # Given a run the step paused at t0
        rid = await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
        assert (await env.store.lookup(rid)).run_state is RunState.PAUSED

        # When business time reaches just before t0 + pause_retry
        env.clock.advance(RETRY - 1)
        await run_until_idle(wf, timeout=WAIT)
        # Then it is still paused
        assert (await env.store.lookup(rid)).run_state is RunState.PAUSED
        assert calls == [1]

        # When it reaches t0 + pause_retry
        env.clock.advance(1)
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    # Then the run was resumed (reason cleared) and its step ran again
    history = env.store.snapshots(wf.name, "fid", rid)
    assert [(r.run_state, r.meta.run_state_reason) for r in history] == [
        (RunState.INITIATED, ""),
        (RunState.PAUSED, "try again later"),
        (RunState.RUNNING, ""),
        (RunState.COMPLETED, ""),
    ]
    assert calls == [1, 3]
    assert run.updated_at - run.created_at == timedelta(seconds=RETRY)


async def test_manual_pauses_are_retried_too(env: Env) -> None:
    b = Builder("manual-retry", Doc, Status)
    b.add_callback(Status.STARTED, lambda run, payload: Status.DONE, Status.DONE)
    wf = env.build(b, pause_retry=timedelta(minutes=10))
    async with wf:
        rid = await wf.trigger("fid")
        await wf.pause(rid, "by hand")
        await run_until_idle(wf, timeout=WAIT)
        env.clock.advance(RETRY)
        run = await wait_for(wf, "fid", lambda r: r.run_state is RunState.RUNNING, timeout=WAIT)
    assert run.meta.run_state_reason == ""


async def test_a_run_resumed_by_hand_meanwhile_is_left_alone(env: Env) -> None:
    b = Builder("resumed-meanwhile", Doc, Status)
    b.add_callback(Status.STARTED, lambda run, payload: Status.DONE, Status.DONE)
    wf = env.build(b, pause_retry=RETRY)
    async with wf:
        rid = await wf.trigger("fid")
        await wf.pause(rid)
        await wf.resume(rid)
        await run_until_idle(wf, timeout=WAIT)
        env.clock.advance(RETRY)
        await run_until_idle(wf, timeout=WAIT)
        record = await env.store.lookup(rid)
    assert (record.run_state, record.version) == (RunState.RUNNING, 3)


async def test_a_run_paused_again_later_waits_its_full_delay(env: Env) -> None:
    # Given a run paused at t0, resumed and paused again at t0 + RETRY/2
    b = Builder("repaused", Doc, Status)
    b.add_callback(Status.STARTED, lambda run, payload: Status.DONE, Status.DONE)
    wf = env.build(b, pause_retry=RETRY)
    async with wf:
        rid = await wf.trigger("fid")
        await wf.pause(rid)
        env.clock.advance(RETRY / 2)
        await wf.resume(rid)
        await wf.pause(rid, "second")
        # When the first pause's delay has passed
        env.clock.advance(RETRY / 2)
        await run_until_idle(wf, timeout=WAIT)
        # Then the second pause is untouched
        assert (await env.store.lookup(rid)).meta.run_state_reason == "second"
        # And it is resumed once its own delay has passed
        env.clock.advance(RETRY / 2)
        await wait_for(wf, "fid", lambda r: r.run_state is RunState.RUNNING, timeout=WAIT)


async def test_pause_retry_none_removes_the_process(env: Env) -> None:
    calls: list[int] = []
    with_retry = env.build(pauses_once(calls))
    without = env.build(pauses_once(calls), pause_retry=None)
    assert "paused-records-retry-consumer" in with_retry.process_names()
    assert "paused-records-retry-consumer" not in without.process_names()
    async with without:
        rid = await without.trigger("fid")
        await run_until_idle(without, timeout=WAIT)
        env.clock.advance(timedelta(days=365))
        await run_until_idle(without, timeout=WAIT)
        assert (await env.store.lookup(rid)).run_state is RunState.PAUSED


async def test_pause_after_errors_then_retry_reaches_the_end(env: Env) -> None:
    # luno's TestRetryOfPausedRecords: pause after 3 errors; the step fails 5 times, then
    # succeeds. Paused after failures 1-3, resumed, fails twice more, then completes.
    failures = 0

    async def step(run: Run[Doc, Status]) -> Status:
        nonlocal failures
        if failures < 5:
            failures += 1
            raise RuntimeError("downstream unavailable")
        return Status.DONE

    b = Builder("luno-retry", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(
        b,
        pause_retry=RETRY,
        default_options=Options(err_backoff=0.001, pause_after_err_count=3),
    )
    async with wf:
        rid = await wf.trigger("fid")
        await wait_for(wf, "fid", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
        await run_until_idle(wf, timeout=WAIT)
        assert failures == 3
        env.clock.advance(RETRY)
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
    assert failures == 5
    states = [r.run_state for r in env.store.snapshots(wf.name, "fid", rid)]
    assert states == [
        RunState.INITIATED,
        RunState.PAUSED,
        RunState.RUNNING,
        RunState.COMPLETED,
    ]
