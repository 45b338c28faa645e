"""Step errors: retried with backoff, and paused after pause_after_err_count identical errors."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import Builder, Options, Run, RunState, Workflow
from conveyor.testing import run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status

AUTO_PAUSE = "max error retry threshold hit - automatically paused"


def failing_workflow(
    env: Env, calls: list[int], *, succeed_at: int | None = None, **opts: int
) -> Workflow[Doc, Status]:
    async def step(run: Run[Doc, Status]) -> Status:
        calls.append(run.version)
        if succeed_at is not None and len(calls) >= succeed_at:
            return Status.DONE
        raise RuntimeError("payment provider unavailable")

    b = Builder("errors", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE).with_options(err_backoff=0.001, **opts)
    return env.build(b, pause_retry=None)


@pytest.mark.parametrize("n", [1, 3])
async def test_a_run_is_paused_after_exactly_n_errors(env: Env, n: int) -> None:
    calls: list[int] = []
    wf = failing_workflow(env, calls, pause_after_err_count=n)
    async with wf:
        # When
        rid = await wf.trigger("fid")
        run = await wait_for(wf, "fid", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
        await run_until_idle(wf, timeout=WAIT)
    # Then
    assert len(calls) == n
    assert run.meta.run_state_reason == (
        f"{AUTO_PAUSE} after {n} failed attempts; "
        "last error: RuntimeError: payment provider unavailable"
    )
    assert run.status is Status.STARTED
    assert [r.version for r in env.store.snapshots(wf.name, "fid", rid)] == [1, 2]


async def test_errors_below_the_threshold_are_retried(env: Env) -> None:
    calls: list[int] = []
    wf = failing_workflow(env, calls, succeed_at=3, pause_after_err_count=3)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    assert len(calls) == 3
    states = [r.run_state for r in env.store.snapshots(wf.name, "fid", rid)]
    assert RunState.PAUSED not in states
    assert run.run_state is RunState.COMPLETED


async def test_zero_disables_pausing(env: Env) -> None:
    # Given a step that fails 6 times before it succeeds, and pause_after_err_count=0
    # (backoff grows exponentially, so more failures would only make the test slower)
    calls: list[int] = []
    wf = failing_workflow(env, calls, succeed_at=7, pause_after_err_count=0)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
    assert len(calls) == 7
    assert RunState.PAUSED not in [r.run_state for r in env.store.snapshots(wf.name, "fid", rid)]


async def test_the_threshold_can_come_from_the_defaults(env: Env) -> None:
    calls = 0

    async def step(run: Run[Doc, Status]) -> Status:
        nonlocal calls
        calls += 1
        raise ValueError("bad data")

    b = Builder("default-threshold", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(b, default_options=Options(err_backoff=0.001, pause_after_err_count=2))
    async with wf:
        await wf.trigger("fid")
        run = await wait_for(wf, "fid", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
    assert calls == 2
    assert run.meta.run_state_reason.startswith(AUTO_PAUSE)
    assert run.meta.run_state_reason.endswith("last error: ValueError: bad data")


async def test_errors_are_counted_per_run(env: Env) -> None:
    # Given runs "a" and "b" that each fail twice before succeeding, with a threshold of 3
    calls: dict[str, int] = {}

    async def step(run: Run[Doc, Status]) -> Status:
        calls[run.foreign_id] = calls.get(run.foreign_id, 0) + 1
        if calls[run.foreign_id] <= 2:
            raise RuntimeError("same message for every run")
        return Status.DONE

    b = Builder("per-run", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE).with_options(
        err_backoff=0.001, pause_after_err_count=3
    )
    wf = env.build(b)
    async with wf:
        ra = await wf.trigger("a")
        rb = await wf.trigger("b")
        async with asyncio.timeout(WAIT):
            await wf.wait("a", ra, Status.DONE)
            await wf.wait("b", rb, Status.DONE)
    # Then neither run was paused: four errors in all, but only two per run
    assert calls == {"a": 3, "b": 3}
    for rid, fid in ((ra, "a"), (rb, "b")):
        states = [r.run_state for r in env.store.snapshots(wf.name, fid, rid)]
        assert RunState.PAUSED not in states


async def test_a_failing_run_blocks_only_until_it_is_paused(env: Env) -> None:
    # Given one run that always fails, triggered before a run that succeeds (same shard)
    async def step(run: Run[Doc, Status]) -> Status:
        if run.foreign_id == "bad":
            raise RuntimeError("always")
        return Status.DONE

    b = Builder("hol", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE).with_options(
        err_backoff=0.001, pause_after_err_count=3
    )
    wf = env.build(b)
    async with wf:
        await wf.trigger("bad")
        good = await wf.trigger("good")
        # Then the good run still completes
        async with asyncio.timeout(WAIT):
            await wf.wait("good", good, Status.DONE)
        # And the bad one is paused, not retried for ever
        bad = await wait_for(wf, "bad", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
    assert bad.meta.run_state_reason.startswith(AUTO_PAUSE)


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 10])
def test_backoff_grows_exponentially_with_jitter_from_the_base(attempt: int) -> None:
    from conveyor._supervisor import backoff_delay

    base = 0.1
    ceiling = min(60.0, base * 2 ** (attempt - 1))
    delays = [backoff_delay(base, attempt) for _ in range(200)]
    assert all(min(base / 2, ceiling) <= d <= ceiling for d in delays)
    if attempt > 1:
        assert len(set(delays)) > 1  # jittered


def test_backoff_is_capped_and_zero_base_means_no_wait() -> None:
    from conveyor._supervisor import backoff_delay

    assert backoff_delay(1.0, 100) <= 60.0
    # No float overflow, however many failures: still a delay within [base/2, cap].
    assert all(0.5 <= backoff_delay(1.0, 10_000) <= 60.0 for _ in range(100))
    assert backoff_delay(0.0, 5) == 0.0
