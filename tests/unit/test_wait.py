"""wait(): return once the run has reached a status; RunEnded if it finished another way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor import (
    Builder,
    InvalidTransition,
    RecordNotFound,
    Run,
    RunEnded,
    RunState,
    Workflow,
)
from conveyor.testing import run_until_idle

from ._support import WAIT, Doc, Env, Status, settle


async def finish(run: Run[Doc, Status], payload: bytes) -> Status:
    return Status.DONE if payload == b"done" else Status.OTHER_END


def with_callback(env: Env) -> Workflow[Doc, Status]:
    """STARTED -(step)-> MIDDLE -(callback "done"/other)-> DONE | OTHER_END."""

    async def step(run: Run[Doc, Status]) -> Status:
        run.object.name = "at middle"
        return Status.MIDDLE

    b = Builder("wait", Doc, Status)
    b.add_step(Status.STARTED, step, Status.MIDDLE)
    b.add_callback(Status.MIDDLE, finish, Status.DONE, Status.OTHER_END)
    return env.build(b)


async def test_returns_when_the_status_is_reached(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.MIDDLE)
    assert run.run_id == rid
    assert run.status is Status.MIDDLE
    assert run.object.name == "at middle"


async def test_returns_if_the_status_was_reached_before_the_call(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
        assert (await env.store.lookup(rid)).status == Status.MIDDLE
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.MIDDLE)
    assert run.status is Status.MIDDLE


async def test_a_terminal_status_returns_once_completed_there(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        waiter = asyncio.create_task(wf.wait("fid", rid, Status.DONE))
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.MIDDLE)
        await wf.callback("fid", Status.MIDDLE, b"done")
        async with asyncio.timeout(WAIT):
            run = await waiter
        # and again, now that it already happened
        async with asyncio.timeout(WAIT):
            again = await wf.wait("fid", rid, Status.DONE)
    assert run.run_state is RunState.COMPLETED
    assert again.version == run.version == 3


async def test_completion_at_another_terminal_status_raises_run_ended(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        waiter = asyncio.create_task(wf.wait("fid", rid, Status.DONE))
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.MIDDLE)
        await wf.callback("fid", Status.MIDDLE, b"other")
        async with asyncio.timeout(WAIT):
            with pytest.raises(RunEnded) as info:
                await waiter
        # also when asked afterwards
        async with asyncio.timeout(WAIT):
            with pytest.raises(RunEnded):
                await wf.wait("fid", rid, Status.DONE)
    assert info.value.record.run_id == rid
    assert info.value.record.status == Status.OTHER_END
    assert info.value.record.run_state is RunState.COMPLETED


async def test_cancellation_raises_run_ended_with_the_record(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.MIDDLE)
        waiter = asyncio.create_task(wf.wait("fid", rid, Status.DONE))
        await settle()
        await wf.cancel(rid, "no longer needed")
        async with asyncio.timeout(WAIT):
            with pytest.raises(RunEnded) as info:
                await waiter
    assert info.value.record.run_state is RunState.CANCELLED
    assert info.value.record.meta.run_state_reason == "no longer needed"


async def test_deleted_data_raises_run_ended(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.MIDDLE)
        await wf.cancel(rid)
        await wf.delete_data(rid)
        async with asyncio.timeout(WAIT):
            with pytest.raises(RunEnded):
                await wf.wait("fid", rid, Status.DONE)


async def test_keeps_waiting_while_paused_and_returns_after_resume(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.MIDDLE)
        waiter = asyncio.create_task(wf.wait("fid", rid, Status.DONE))
        # When the run is paused
        await wf.pause(rid, "checking")
        await run_until_idle(wf, timeout=WAIT)
        await settle()
        # Then the waiter still waits
        assert not waiter.done()
        # When it is resumed and finishes
        await wf.resume(rid)
        await wf.callback("fid", Status.MIDDLE, b"done")
        async with asyncio.timeout(WAIT):
            run = await waiter
    assert run.status is Status.DONE


async def test_concurrent_waits_on_one_run_all_return(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        middles = [asyncio.create_task(wf.wait("fid", rid, Status.MIDDLE)) for _ in range(3)]
        dones = [asyncio.create_task(wf.wait("fid", rid, Status.DONE)) for _ in range(3)]
        async with asyncio.timeout(WAIT):
            for run in await asyncio.gather(*middles):
                assert run.status is Status.MIDDLE
            await wf.callback("fid", Status.MIDDLE, b"done")
            for run in await asyncio.gather(*dones):
                assert run.status is Status.DONE


async def test_waits_for_different_runs_do_not_interfere(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        a = await wf.trigger("a")
        b = await wf.trigger("b")
        wait_a = asyncio.create_task(wf.wait("a", a, Status.DONE))
        wait_b = asyncio.create_task(wf.wait("b", b, Status.DONE))
        async with asyncio.timeout(WAIT):
            await wf.wait("b", b, Status.MIDDLE)
            await wf.callback("b", Status.MIDDLE, b"done")
            assert (await wait_b).run_id == b
        await settle()
        assert not wait_a.done()
        async with asyncio.timeout(WAIT):
            await wf.wait("a", a, Status.MIDDLE)
            await wf.callback("a", Status.MIDDLE, b"done")
            assert (await wait_a).run_id == a


@pytest.mark.parametrize("status", [Status.UNUSED, 42])
async def test_a_status_outside_the_graph_is_refused(env: Env, status: Any) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            with pytest.raises(InvalidTransition):
                await wf.wait("fid", rid, status)


async def test_returns_for_an_intermediate_status_passed_before_the_call(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.MIDDLE)
        await wf.callback("fid", Status.MIDDLE, b"done")
        # The run passed MIDDLE before this call
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.MIDDLE)
    assert run.run_id == rid


async def test_returns_for_a_status_passed_while_the_run_waits_further_on(env: Env) -> None:
    # Given a run that passed STARTED and now waits at MIDDLE for a callback
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
        assert (await env.store.lookup(rid)).status == Status.MIDDLE
        # When waiting for STARTED afterwards
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.STARTED)
    # Then wait returns the run as it is now (it reached STARTED earlier)
    assert run.status is Status.MIDDLE
    assert run.meta.reached == (Status.STARTED, Status.MIDDLE)


async def test_a_terminal_status_the_run_never_reached_still_raises_run_ended(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
        await wf.callback("fid", Status.MIDDLE, b"other")
        with pytest.raises(RunEnded):
            async with asyncio.timeout(WAIT):
                await wf.wait("fid", rid, Status.DONE)


async def test_an_unknown_run_id_raises_record_not_found_at_once(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        with pytest.raises(RecordNotFound, match="no run 'nope' for foreign ID 'fid'"):
            await wf.wait("fid", "nope", Status.DONE)


async def test_a_run_of_another_foreign_id_raises_record_not_found(env: Env) -> None:
    wf = with_callback(env)
    async with wf:
        rid = await wf.trigger("alice")
        await run_until_idle(wf, timeout=WAIT)
        with pytest.raises(RecordNotFound, match="for foreign ID 'bob'"):
            await wf.wait("bob", rid, Status.MIDDLE)
        # And the right foreign ID still finds it
        assert (await wf.wait("alice", rid, Status.MIDDLE)).run_id == rid


async def test_a_run_of_another_workflow_raises_record_not_found(env: Env) -> None:
    wf = with_callback(env)
    b = Builder("other", Doc, Status)
    b.add_callback(Status.STARTED, finish, Status.DONE)
    other = env.build(b)
    async with wf, other:
        rid = await other.trigger("fid")
        with pytest.raises(RecordNotFound):
            await wf.wait("fid", rid, Status.MIDDLE)
