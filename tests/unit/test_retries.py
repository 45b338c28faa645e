"""A failing or hanging run is retried alone: its consumer goes on with the others.

The memory store records failures (``RecordsFailures``), so failed attempts are kept
beside their run, retried after a backoff, counted for ``pause_after_err_count`` at the
run's version, and shown by ``lookup``.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from conveyor import Builder, Options, Run, RunState, Workflow
from conveyor.abc import RecordsFailures
from conveyor.testing import run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status, to_done


def shard_with_trouble(
    env: Env, *, err_backoff: float, attempt_timeout: float = 0.0, pause_after_err_count: int = 0
) -> Builder[Doc, Status]:
    """One shard (parallel_count=1): run "bad" always raises, "hang" never returns."""

    async def step(run: Run[Doc, Status]) -> Status:
        if run.foreign_id == "bad":
            raise RuntimeError("card declined")
        if run.foreign_id == "hang":
            await asyncio.Event().wait()
        return Status.DONE

    b = Builder("trouble", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE).with_options(
        parallel_count=1,
        err_backoff=err_backoff,
        attempt_timeout=attempt_timeout,
        pause_after_err_count=pause_after_err_count,
    )
    return b


async def test_a_failing_and_a_hanging_run_do_not_hold_up_the_runs_behind_them(
    env: Env,
) -> None:
    # Given a failing and a hanging run ahead of 100 others in one shard
    assert isinstance(env.store, RecordsFailures)
    wf = env.build(shard_with_trouble(env, err_backoff=0.05, attempt_timeout=0.2))
    async with wf:
        bad = await wf.trigger("bad")
        hang = await wf.trigger("hang")
        others = [(f"o-{i}", await wf.trigger(f"o-{i}")) for i in range(100)]
        # Then every other run completes while those two keep failing
        async with asyncio.timeout(WAIT):
            for fid, rid in others:
                await wf.wait(fid, rid, Status.DONE)
        bad_run = await wf.lookup(bad)
        hang_run = await wf.lookup(hang)
    assert bad_run.run_state is RunState.INITIATED
    assert bad_run.failure is not None
    assert bad_run.failure.error_type == "RuntimeError"
    assert bad_run.failure.message == "RuntimeError: card declined"
    assert hang_run.failure is not None
    assert hang_run.failure.error_type == "AttemptTimedOut"
    assert "attempt_timeout (0.2s)" in hang_run.failure.message


async def test_a_failure_is_kept_beside_the_run_without_writing_it(env: Env) -> None:
    wf = env.build(shard_with_trouble(env, err_backoff=60.0))
    async with wf:
        rid = await wf.trigger("bad")
        async with asyncio.timeout(WAIT):
            while (await wf.lookup(rid)).failure is None:
                await env.store.wait_for_change(0.01)
        run = await wf.lookup(rid)
    failure = run.failure
    assert failure is not None
    # The record itself is as the trigger wrote it: same version, no event
    assert run.meta.version == 1
    assert [r.version for r in env.store.snapshots(wf.name, "bad", rid)] == [1]
    # And the failure says which attempt, by whom, and when the next one is due (UTC)
    assert (failure.run_id, failure.version, failure.attempt) == (rid, 1, 1)
    assert failure.process == "started-consumer-1-of-1"
    assert failure.next_attempt_at is not None
    assert failure.next_attempt_at.tzinfo is UTC
    assert failure.next_attempt_at > datetime.now(UTC)


async def test_recorded_failures_pause_the_run_and_the_reason_names_the_error(
    env: Env,
) -> None:
    wf = env.build(shard_with_trouble(env, err_backoff=0.001, pause_after_err_count=3))
    async with wf:
        rid = await wf.trigger("bad")
        run = await wait_for(wf, "bad", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
    assert run.meta.run_state_reason == (
        "max error retry threshold hit - automatically paused after 3 failed attempts; "
        "last error: RuntimeError: card declined"
    )
    assert await store_failures(env, rid) == [(1, 1), (1, 2), (1, 3)]


async def store_failures(env: Env, run_id: str) -> list[tuple[int, int]]:
    """(version, attempt) of every failure the memory store keeps for the run."""
    return [(f.version, f.attempt) for f in await env.store.failures(run_id)]


async def test_a_resume_from_another_process_starts_a_new_count(env: Env) -> None:
    # Given a run paused after 2 failures by one instance
    b = shard_with_trouble(env, err_backoff=0.001, pause_after_err_count=2)
    first = env.build(b, pause_retry=None)
    async with first:
        rid = await first.trigger("bad")
        await wait_for(first, "bad", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
    # When another instance (another process) resumes it
    second = env.build(b, pause_retry=None)
    async with second:
        await second.resume(rid)
        # Then it gets two fresh attempts before it pauses again
        run = await wait_for(
            second,
            "bad",
            lambda r: r.run_state is RunState.PAUSED and r.meta.version > 2,
            timeout=WAIT,
        )
    assert run.meta.version == 4  # trigger, pause, resume, pause
    assert await store_failures(env, rid) == [(1, 1), (1, 2), (3, 1), (3, 2)]


async def test_a_retry_left_by_a_stopped_instance_is_made_by_the_next_holder(
    env: Env,
) -> None:
    # Given a run whose attempt failed, with its retry due later, and its instance stopped
    attempts: list[str] = []

    async def flaky(run: Run[Doc, Status]) -> Status:
        attempts.append(run.foreign_id)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return Status.DONE

    b = Builder("handed", Doc, Status)
    b.add_step(Status.STARTED, flaky, Status.DONE).with_options(err_backoff=0.05)
    first = env.build(b)
    async with first:
        rid = await first.trigger("fid")
        async with asyncio.timeout(WAIT):
            while not await env.store.failures(rid):
                await env.store.wait_for_change(0.01)
    assert (await env.store.lookup(rid)).run_state is RunState.INITIATED
    # When another instance takes the role over (the event was acknowledged already)
    second = env.build(b)
    async with second:
        async with asyncio.timeout(WAIT):
            run = await second.wait("fid", rid, Status.DONE)
    # Then it made the retry the first one left
    assert run.run_state is RunState.COMPLETED
    assert attempts == ["fid", "fid"]


async def test_a_hung_sync_attempt_is_abandoned_and_does_not_hang_stop(env: Env) -> None:
    release = threading.Event()
    entered = threading.Event()
    calls: list[int] = []

    def stuck(run: Run[Doc, Status]) -> Status:
        calls.append(run.version)
        entered.set()
        release.wait(WAIT)
        return Status.DONE

    b = Builder("stuck", Doc, Status)
    b.add_step(Status.STARTED, stuck, Status.DONE).with_options(
        attempt_timeout=0.05, err_backoff=0.01
    )
    wf: Workflow[Doc, Status] = env.build(b)
    try:
        async with wf:
            rid = await wf.trigger("fid")
            assert await asyncio.to_thread(entered.wait, WAIT)
            async with asyncio.timeout(WAIT):
                while (await wf.lookup(rid)).failure is None:
                    await env.store.wait_for_change(0.01)
            run = await wf.lookup(rid)
            assert run.failure is not None
            assert run.failure.error_type == "AttemptTimedOut"
            # While its thread lives, the run is not attempted again in a new thread
            async with asyncio.timeout(WAIT):
                while len(await env.store.failures(rid)) < 3:
                    await env.store.wait_for_change(0.01)
            later = await env.store.failures(rid)
            assert {f.error_type for f in later[1:]} == {"AttemptStillRunning"}
            assert calls == [1]
            assert wf._engine.threads.abandoned == 1
        # And stop() returned although the thread still runs
        assert not release.is_set()
    finally:
        release.set()
    # The abandoned thread's result is thrown away: the run was never written by it
    assert (await env.store.lookup(rid)).meta.version == 1


@pytest.mark.parametrize("timeout", [0.0, None])
def test_attempt_timeout_is_off_by_default(timeout: float | None) -> None:
    resolved = Options(attempt_timeout=timeout).resolve()
    assert resolved.attempt_timeout == 0.0


async def test_a_failing_hook_is_retried_alone(env: Env) -> None:
    calls: dict[str, int] = {}

    async def on_complete(record: object) -> None:
        fid = getattr(record, "foreign_id")  # noqa: B009
        calls[fid] = calls.get(fid, 0) + 1
        if fid == "bad" and calls[fid] < 3:
            raise RuntimeError("mailer down")

    async def finish(run: Run[Doc, Status]) -> Status:
        return Status.DONE

    b = Builder("hooked", Doc, Status)
    b.add_step(Status.STARTED, finish, Status.DONE)
    b.on_complete(on_complete)
    wf = env.build(b, default_options=Options(err_backoff=0.01))
    async with wf:
        for fid in ("bad", "a", "b"):
            await wf.trigger(fid)
        await run_until_idle(wf, timeout=WAIT)
    assert calls == {"bad": 3, "a": 1, "b": 1}


async def test_a_hook_retry_left_by_a_stopped_instance_is_made_by_the_next_one(
    env: Env,
) -> None:
    # Given a hook whose first attempt failed, its retry a while away, and its instance
    # stopped (the event was acknowledged when the attempt failed)
    calls: list[int] = []

    async def on_complete(record: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("mailer down")

    b = Builder("hook-handover", Doc, Status)
    b.add_step(Status.STARTED, to_done, Status.DONE)
    b.on_complete(on_complete)
    first = env.build(b, default_options=Options(err_backoff=0.05))
    async with first:
        rid = await first.trigger("fid")
        async with asyncio.timeout(WAIT):
            while not await env.store.failures(rid):
                await env.store.wait_for_change(0.01)
    assert calls == [1]
    # When another instance takes over, it makes the retry
    second = env.build(b, default_options=Options(err_backoff=0.05))
    async with second:
        await run_until_idle(second, timeout=WAIT)
    assert calls == [1, 1]
