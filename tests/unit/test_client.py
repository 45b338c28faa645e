"""client(): an API process triggers, waits, calls back and controls runs, running nothing."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import Builder, NotRunning, Run, RunState, State, Workflow, WorkflowClient
from conveyor.testing import run_until_idle

from ._support import WAIT, Doc, Env, Status, settle


def order_flow(env: Env, steps_ran: list[str]) -> Workflow[Doc, Status]:
    """STARTED -(step)-> MIDDLE -(callback)-> DONE."""

    async def reserve(run: Run[Doc, Status]) -> Status:
        steps_ran.append(run.foreign_id)
        return Status.MIDDLE

    async def paid(run: Run[Doc, Status], payload: bytes) -> Status:
        run.object.name = payload.decode()
        return Status.DONE

    b = Builder("orders", Doc, Status)
    b.add_step(Status.STARTED, reserve, Status.MIDDLE)
    b.add_callback(Status.MIDDLE, paid, Status.DONE)
    return env.build(b)


async def test_a_client_triggers_and_waits_while_a_worker_runs_the_steps(env: Env) -> None:
    # Given an API process's workflow in client mode and a worker's on the same backend
    api_ran: list[str] = []
    worker_ran: list[str] = []
    api = order_flow(env, api_ran)
    worker = order_flow(env, worker_ran)
    async with api.client() as client, worker:
        # When the client starts an order, waits for it, and calls back
        rid = await client.trigger("order-1")
        at_middle = await client.wait("order-1", rid, Status.MIDDLE)
        done = await client.callback("order-1", Status.MIDDLE, b"paid by card")
        # Then the worker ran the step and the client got every answer
        assert at_middle.status is Status.MIDDLE
        assert (done.status, done.run_state, done.object.name) == (
            Status.DONE,
            RunState.COMPLETED,
            "paid by card",
        )
        assert (await client.lookup(rid)).status is Status.DONE
    assert worker_ran == ["order-1"]
    assert api_ran == []


async def test_a_client_runs_no_process_and_takes_no_role(env: Env) -> None:
    ran: list[str] = []
    wf = order_flow(env, ran)
    async with wf.client() as client:
        rid = await client.trigger("order-1")
        await settle()
        # No step ran, no role is held, every process is still Unknown
        assert ran == []
        assert env.roles.held_roles() == []
        assert set(wf.states().values()) == {State.UNKNOWN}
        assert (await client.lookup(rid)).run_state is RunState.INITIATED
        # And schedules need a worker
        with pytest.raises(NotRunning, match="client runs no background process"):
            await client.workflow.schedule("daily", "@daily")


async def test_the_workflow_itself_works_while_its_client_is_open(env: Env) -> None:
    wf = order_flow(env, [])
    with pytest.raises(NotRunning, match="use run\\(\\) in a worker, or client\\(\\)"):
        await wf.trigger("before")
    async with wf.client() as client:
        rid = await wf.trigger("order-1")
        assert isinstance(client, WorkflowClient)
        assert client.name == "orders"
        paused = await wf.pause(rid, "held")
        assert paused.run_state is RunState.PAUSED
        assert (await client.resume(rid)).run_state is RunState.RUNNING
        cancelled = await client.cancel(rid, "no longer wanted")
        assert cancelled.run_state is RunState.CANCELLED
        deleted = await client.delete_data(rid)
        assert deleted.run_state is RunState.REQUESTED_DATA_DELETED
    # After the block, the API is closed again
    with pytest.raises(NotRunning):
        await wf.trigger("after")


async def test_clients_nest_and_overlap_run(env: Env) -> None:
    wf = order_flow(env, [])
    async with wf.client():
        async with wf.client() as inner:
            await inner.trigger("a")
        await wf.trigger("b")  # the outer client still holds the API open
        async with wf:
            rid = await wf.trigger("c")
            await run_until_idle(wf, timeout=WAIT)
            assert (await wf.lookup(rid)).status is Status.MIDDLE
        await wf.trigger("d")
    with pytest.raises(NotRunning):
        await wf.trigger("e")


async def test_a_wait_in_a_client_returns_after_the_worker_moves_the_run(env: Env) -> None:
    api = order_flow(env, [])
    worker = order_flow(env, [])
    async with api.client() as client:
        rid = await client.trigger("order-1")
        waiting = asyncio.create_task(client.wait("order-1", rid, Status.MIDDLE))
        await settle()
        assert not waiting.done()  # nothing moves the run without a worker
        async with worker:
            async with asyncio.timeout(WAIT):
                run = await waiting
    assert run.status is Status.MIDDLE
