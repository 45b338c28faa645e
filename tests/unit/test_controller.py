"""pause / resume / cancel / delete_data: moves through the RunState table, by API or controller."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from conveyor import (
    Builder,
    InvalidTransition,
    Marker,
    RecordNotFound,
    Run,
    RunState,
    RunStateController,
    VersionConflict,
    Workflow,
)
from conveyor.abc import RecordWrite
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.testing import FakeClock, run_until_idle

from ._support import START, WAIT, Doc, Env, Status


async def finish(run: Run[Doc, Status], payload: bytes) -> Status:
    return Status.DONE


def at_middle(env: Env, calls: list[int] | None = None) -> Workflow[Doc, Status]:
    """STARTED -(step)-> MIDDLE (Running, waits for a callback) -> DONE."""

    async def step(run: Run[Doc, Status]) -> Status:
        if calls is not None:
            calls.append(run.version)
        return Status.MIDDLE

    b = Builder("controller", Doc, Status)
    b.add_step(Status.STARTED, step, Status.MIDDLE)
    b.add_callback(Status.MIDDLE, finish, Status.DONE)
    return env.build(b)


async def running_at_middle(wf: Workflow[Doc, Status], fid: str = "fid") -> str:
    rid = await wf.trigger(fid)
    async with asyncio.timeout(WAIT):
        await wf.wait(fid, rid, Status.MIDDLE)
    return rid


async def test_pause_sets_the_reason_and_resume_clears_it(env: Env) -> None:
    wf = at_middle(env)
    async with wf:
        rid = await running_at_middle(wf)
        paused = await wf.pause(rid, "fraud check")
        assert (paused.run_state, paused.version, paused.meta.run_state_reason) == (
            RunState.PAUSED,
            3,
            "fraud check",
        )
        resumed = await wf.resume(rid)
        assert (resumed.run_state, resumed.version, resumed.meta.run_state_reason) == (
            RunState.RUNNING,
            4,
            "",
        )
        # the status and object are untouched
        assert paused.status == resumed.status == Status.MIDDLE
        assert (await wf.lookup(rid)) == resumed


async def test_an_initiated_run_can_be_paused_but_not_cancelled(env: Env) -> None:
    b = Builder("initiated", Doc, Status)
    b.add_callback(Status.STARTED, finish, Status.DONE)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid")
        message = re.escape("cannot cancel a run that is Initiated")
        with pytest.raises(InvalidTransition, match=message):
            await wf.cancel(rid)
        assert (await wf.pause(rid)).run_state is RunState.PAUSED
        assert (await wf.cancel(rid, "gone")).run_state is RunState.CANCELLED


async def test_cancel_from_running_and_from_paused(env: Env) -> None:
    wf = at_middle(env)
    async with wf:
        a = await running_at_middle(wf, "a")
        b = await running_at_middle(wf, "b")
        await wf.pause(b)
        ca = await wf.cancel(a, "from running")
        cb = await wf.cancel(b, "from paused")
    assert (ca.run_state, ca.meta.run_state_reason) == (RunState.CANCELLED, "from running")
    assert (cb.run_state, cb.meta.run_state_reason) == (RunState.CANCELLED, "from paused")


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        pytest.param([], "resume", id="resume-running"),
        pytest.param([], "delete_data", id="delete-running"),
        pytest.param(["pause"], "pause", id="pause-paused"),
        pytest.param(["pause"], "delete_data", id="delete-paused"),
        pytest.param(["cancel"], "pause", id="pause-cancelled"),
        pytest.param(["cancel"], "resume", id="resume-cancelled"),
        pytest.param(["cancel"], "cancel", id="cancel-cancelled"),
        pytest.param(["complete"], "pause", id="pause-completed"),
        pytest.param(["complete"], "resume", id="resume-completed"),
        pytest.param(["complete"], "cancel", id="cancel-completed"),
    ],
)
async def test_moves_outside_the_table_raise_invalid_transition(
    env: Env, setup: list[str], action: str
) -> None:
    wf = at_middle(env)
    async with wf:
        rid = await running_at_middle(wf)
        for step in setup:
            if step == "complete":
                await wf.callback("fid", Status.MIDDLE, b"")
            else:
                await getattr(wf, step)(rid)
        before = await env.store.lookup(rid)
        with pytest.raises(InvalidTransition, match=r"cannot .* a run that is"):
            await getattr(wf, action)(rid)
        assert await env.store.lookup(rid) == before


async def test_resume_runs_the_current_step_again(env: Env) -> None:
    # Given a step that pauses its run the first time
    calls: list[int] = []

    async def step(run: Run[Doc, Status]) -> Status | Marker:
        calls.append(run.version)
        if len(calls) == 1:
            return run.pause("first look")
        return Status.DONE

    b = Builder("resume", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
        assert (await env.store.lookup(rid)).run_state is RunState.PAUSED
        # When
        await wf.resume(rid)
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    # Then the step ran on the resumed version
    assert calls == [1, 3]
    assert run.version == 4


async def test_unknown_run_ids_raise_record_not_found(env: Env) -> None:
    wf = at_middle(env)
    async with wf:
        for action in ("pause", "resume", "cancel", "delete_data"):
            with pytest.raises(RecordNotFound):
                await getattr(wf, action)("no-such-run")


async def test_one_controller_makes_successive_moves(env: Env) -> None:
    wf = at_middle(env)
    async with wf:
        rid = await running_at_middle(wf)
        controller = wf.controller(await env.store.lookup(rid))
        assert isinstance(controller, RunStateController)
        # When
        p = await controller.pause("p")
        r = await controller.resume()
        c = await controller.cancel("c")
        d = await controller.delete_data("d")
        # Then each move wrote one version and the controller holds the latest
        assert [(x.run_state, x.version, x.meta.run_state_reason) for x in (p, r, c, d)] == [
            (RunState.PAUSED, 3, "p"),
            (RunState.RUNNING, 4, ""),
            (RunState.CANCELLED, 5, "c"),
            (RunState.REQUESTED_DATA_DELETED, 6, "d"),
        ]
        assert controller.record == d
        with pytest.raises(InvalidTransition):
            await controller.resume()


async def test_a_controller_with_a_stale_record_raises_version_conflict(env: Env) -> None:
    wf = at_middle(env)
    async with wf:
        rid = await running_at_middle(wf)
        stale = wf.controller(await env.store.lookup(rid))
        await wf.pause(rid, "someone else")
        with pytest.raises(VersionConflict):
            await stale.cancel("too late")
        record = await env.store.lookup(rid)
    assert (record.run_state, record.meta.run_state_reason) == (RunState.PAUSED, "someone else")


async def test_a_cancel_racing_a_step_wins_and_the_step_write_is_dropped(env: Env) -> None:
    # Given a step that is running when the run is cancelled
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(run: Run[Doc, Status]) -> Status:
        entered.set()
        await release.wait()
        return Status.MIDDLE

    b = Builder("race", Doc, Status)
    b.add_step(Status.STARTED, slow, Status.MIDDLE)
    b.add_callback(Status.MIDDLE, finish, Status.DONE)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await entered.wait()
        # When
        await wf.pause(rid)
        await wf.cancel(rid, "raced")
        release.set()
        await run_until_idle(wf, timeout=WAIT)
    # Then the step's write lost the compare-and-set
    record = await env.store.lookup(rid)
    assert (record.run_state, record.status, record.version) == (
        RunState.CANCELLED,
        Status.STARTED,
        3,
    )


class RacingStore(MemoryRecordStore):
    """Before each update of a run, another writer moves that run on (a version bump)."""

    async def store(self, write: RecordWrite) -> None:
        if write.expected_version > 0:
            stored = self._records[write.record.run_id]
            bump = dataclasses.replace(stored.meta, version=stored.meta.version + 1)
            racing = RecordWrite(stored.replace(meta=bump), write.outbox, stored.meta.version)
            await super().store(racing)
        await super().store(write)


async def test_a_move_that_keeps_losing_races_raises_version_conflict_with_the_versions() -> None:
    # Given a run whose every update is overtaken by another writer
    store = RacingStore()
    clock = FakeClock(START)
    wf = Builder("racing", Doc, Status)
    wf.add_callback(Status.STARTED, finish, Status.DONE)
    workflow = wf.build(MemoryEventStreamer(clock=clock), store, MemoryRoleScheduler(), clock=clock)
    async with workflow:
        rid = await workflow.trigger("fid")
        # When it is paused
        with pytest.raises(VersionConflict) as raised:
            await workflow.pause(rid, "r")
    # Then, after re-reading the run many times (each re-read found the version the last
    # race left), the error names the version the last attempt expected and the one that
    # was stored instead: the run's current version
    error = raised.value
    assert error.run_id == rid
    assert error.expected_version >= 10
    assert error.actual_version == error.expected_version + 1
    assert (await store.lookup(rid)).version == error.actual_version
