"""Markers a step returns instead of a status: skip, pause, cancel, save_and_repeat."""

from __future__ import annotations

import asyncio

from conveyor import Builder, Marker, Run, RunState
from conveyor.testing import run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status


def one_step(name: str, step: object) -> Builder[Doc, Status]:
    b = Builder(name, Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)  # type: ignore[arg-type]
    return b


async def test_skip_writes_nothing(env: Env) -> None:
    calls = 0

    async def step(run: Run[Doc, Status]) -> Marker:
        nonlocal calls
        calls += 1
        run.object.name = "not saved"
        return run.skip()

    wf = env.build(one_step("skip", step))
    async with wf:
        rid = await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
    assert calls == 1
    history = env.store.snapshots(wf.name, "fid", rid)
    assert len(history) == 1
    assert history[0].run_state is RunState.INITIATED
    assert b"not saved" not in history[0].object


async def test_pause_keeps_the_steps_changes_and_sets_the_reason(env: Env) -> None:
    async def step(run: Run[Doc, Status]) -> Marker:
        run.object.name = "half done"
        return run.pause("waiting for a human")

    wf = env.build(one_step("pause", step))
    async with wf:
        rid = await wf.trigger("fid")
        run = await wait_for(wf, "fid", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
        await run_until_idle(wf, timeout=WAIT)
    assert run.run_id == rid
    assert run.status is Status.STARTED
    assert run.version == 2
    assert run.meta.run_state_reason == "waiting for a human"
    assert run.object.name == "half done"  # the original would drop this change


async def test_cancel_keeps_the_steps_changes_and_sets_the_reason(env: Env) -> None:
    async def step(run: Run[Doc, Status]) -> Marker:
        run.object.items.append("audit: cancelled by step")
        return run.cancel("customer left")

    wf = env.build(one_step("cancel", step))
    async with wf:
        await wf.trigger("fid")
        run = await wait_for(wf, "fid", lambda r: r.run_state is RunState.CANCELLED, timeout=WAIT)
    assert run.status is Status.STARTED
    assert run.version == 2
    assert run.meta.run_state_reason == "customer left"
    assert run.object.items == ["audit: cancelled by step"]


async def test_save_and_repeat_re_runs_the_step_on_the_new_version(env: Env) -> None:
    seen_versions: list[int] = []

    async def step(run: Run[Doc, Status]) -> Status | Marker:
        seen_versions.append(run.version)
        run.object.items.append(f"item-{len(run.object.items)}")
        if len(run.object.items) < 5:
            return run.save_and_repeat()
        return Status.DONE

    wf = env.build(one_step("repeat", step))
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    assert run.object.items == [f"item-{i}" for i in range(5)]
    assert seen_versions == [1, 2, 3, 4, 5]
    history = env.store.snapshots(wf.name, "fid", rid)
    assert [(r.status, r.run_state) for r in history] == [
        (Status.STARTED, RunState.INITIATED),
        *[(Status.STARTED, RunState.RUNNING)] * 4,
        (Status.DONE, RunState.COMPLETED),
    ]


async def test_save_and_repeat_needs_no_self_loop_in_the_graph(env: Env) -> None:
    async def step(run: Run[Doc, Status]) -> Status | Marker:
        run.object.attempts += 1
        return run.save_and_repeat() if run.object.attempts < 2 else Status.DONE

    wf = env.build(one_step("repeat-noloop", step))
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    assert run.object.attempts == 2


def test_markers_are_values() -> None:
    from conveyor.testing import new_testing_run

    run = new_testing_run(Doc(), Status.STARTED)
    assert run.skip() == run.skip()
    assert run.pause("r") == run.pause("r") != run.pause("s")
    assert run.cancel("r").reason == run.pause("r").reason == "r"
    assert isinstance(run.save_and_repeat(), Marker)
    assert run.skip() == run.skip()
