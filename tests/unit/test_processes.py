"""Background processes: names, roles, states, run/stop, and what happens when a role is lost."""

from __future__ import annotations

import asyncio
import threading

from conveyor import Builder, Run, RunState, State, Workflow
from conveyor.testing import run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status, new_env, parked, settle, to_done, to_middle


async def on_complete(record: object) -> None:
    pass


def full(name: str = "my flow") -> Builder[Doc, Status]:
    b = Builder(name, Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE).with_options(parallel_count=2)
    b.add_step(Status.MIDDLE, to_done, Status.DONE)
    b.on_complete(on_complete)
    return b


PROCESSES = {
    "outbox-consumer",
    "started-consumer-1-of-2",
    "started-consumer-2-of-2",
    "middle-consumer-1-of-1",
    "completed-run-state-change-hook-consumer",
    "delete-consumer",
    "paused-records-retry-consumer",
}
ROLES = {
    "my_flow-outbox-consumer",
    "my_flow-1-consumer-1-of-2",
    "my_flow-1-consumer-2-of-2",
    "my_flow-2-consumer-1-of-1",
    "my_flow-completed-run-state-change-hook-consumer",
    "my_flow-delete-consumer",
    "my_flow-paused-records-retry-consumer",
}


def conveyor_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("conveyor:")}


def test_the_exact_set_of_processes(env: Env) -> None:
    wf = env.build(full())
    assert len(wf.process_names()) == len(PROCESSES)
    assert set(wf.process_names()) == PROCESSES
    assert set(wf.states()) == PROCESSES


async def test_each_process_holds_its_role(env: Env) -> None:
    wf = env.build(full())
    async with wf:
        await run_until_idle(wf, timeout=WAIT)
        assert set(env.roles.held_roles()) == ROLES
    assert env.roles.held_roles() == []


async def test_states_unknown_then_running_then_shutdown(env: Env) -> None:
    wf = env.build(full())
    assert set(wf.states().values()) == {State.UNKNOWN}
    await wf.run()
    try:
        await run_until_idle(wf, timeout=WAIT)
        assert set(wf.states().values()) == {State.RUNNING}
    finally:
        await wf.stop()
    assert set(wf.states().values()) == {State.SHUTDOWN}


async def test_idle_while_another_instance_holds_the_roles(env: Env) -> None:
    b = full()
    first, second = env.build(b), env.build(b)
    await first.run()
    try:
        await run_until_idle(first, timeout=WAIT)
        # When a second instance starts
        await second.run()
        await settle()
        # Then it waits for every role
        assert set(second.states().values()) == {State.IDLE}
        # When the first stops, the second takes over
        await first.stop()
        await run_until_idle(second, timeout=WAIT)
        assert set(second.states().values()) == {State.RUNNING}
        rid = await second.trigger("fid")
        async with asyncio.timeout(WAIT):
            await second.wait("fid", rid, Status.DONE)
    finally:
        await first.stop()
        await second.stop()


async def test_run_is_idempotent(env: Env) -> None:
    wf = env.build(full())
    try:
        await wf.run()
        await run_until_idle(wf, timeout=WAIT)
        tasks = conveyor_tasks()
        await wf.run()
        await run_until_idle(wf, timeout=WAIT)
        assert conveyor_tasks() == tasks
    finally:
        await wf.stop()


async def test_stop_before_run_is_a_no_op_and_stop_is_repeatable(env: Env) -> None:
    wf = env.build(full())
    await wf.stop()
    assert set(wf.states().values()) == {State.UNKNOWN}
    async with wf:
        pass
    await wf.stop()
    assert set(wf.states().values()) == {State.SHUTDOWN}


async def test_a_stopped_workflow_can_run_again(env: Env) -> None:
    wf = env.build(full())
    await wf.run()
    await wf.stop()
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
        await run_until_idle(wf, timeout=WAIT)
        assert set(wf.states().values()) == {State.RUNNING}
    assert set(wf.states().values()) == {State.SHUTDOWN}


async def test_stop_leaves_no_task_behind(env: Env) -> None:
    before = asyncio.all_tasks()
    wf = env.build(full())
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
        await run_until_idle(wf, timeout=WAIT)
        assert len(conveyor_tasks()) >= len(PROCESSES)
    assert conveyor_tasks() == set()
    assert asyncio.all_tasks() <= before


async def test_stop_right_after_a_write_ends_promptly() -> None:
    # The write wakes the outbox relay just as stop() cancels it: the cancellation must
    # not be lost (Python 3.11's asyncio.wait_for can swallow it).
    for _ in range(5):
        wf = new_env().build(parked())
        await wf.run()
        await run_until_idle(wf, timeout=WAIT)
        await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.stop()
        assert set(wf.states().values()) == {State.SHUTDOWN}


async def test_a_lost_role_stops_its_process_which_then_takes_the_role_again(env: Env) -> None:
    wf = env.build(full())
    async with wf:
        await run_until_idle(wf, timeout=WAIT)
        role = "my_flow-2-consumer-1-of-1"
        lease = env.roles.holder(role)
        assert lease is not None
        # When
        assert env.roles.revoke(role)
        # Then the lease is lost and the process takes the role again with a new lease
        assert lease.lost()
        await run_until_idle(wf, timeout=WAIT)
        again = env.roles.holder(role)
        assert again is not None
        assert again is not lease
        assert wf.states()["middle-consumer-1-of-1"] is State.RUNNING
        # And the workflow still works
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)


async def test_a_step_in_a_thread_keeps_the_role_until_the_thread_ends(env: Env) -> None:
    # Given a plain def step blocked in its thread
    entered = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def blocking(run: Run[Doc, Status]) -> Status:
        calls.append(run.version)
        entered.set()
        if not release.wait(WAIT):
            raise TimeoutError("never released")
        return Status.DONE

    b = Builder("threaded", Doc, Status)
    b.add_step(Status.STARTED, blocking, Status.DONE)
    wf = env.build(b)
    role = "threaded-1-consumer-1-of-1"
    async with wf:
        rid = await wf.trigger("fid")
        assert await asyncio.to_thread(entered.wait, WAIT)
        held = env.roles.holder(role)
        assert held is not None
        # When the role is revoked while the thread runs
        env.roles.revoke(role)
        await settle()
        # Then the process does not take the role again, nor start a new body
        assert env.roles.holder(role) is None
        assert wf.states()["started-consumer-1-of-1"] is State.RUNNING
        assert calls == [1]
        # When the thread ends
        release.set()
        # Then its result is written (nobody moved the run meanwhile): the run completes
        # without the step running again, and the process takes its role again
        run = await wait_for(wf, "fid", lambda r: r.run_state is RunState.COMPLETED, timeout=WAIT)
        assert run.run_id == rid
        async with asyncio.timeout(WAIT):
            while True:
                if env.roles.holder(role) is not None:
                    break
                await asyncio.sleep(0)
    assert calls == [1]


async def test_stop_waits_for_a_step_running_in_a_thread_and_writes_its_result(
    env: Env,
) -> None:
    entered = threading.Event()
    release = threading.Event()
    finished: list[int] = []

    def blocking(run: Run[Doc, Status]) -> Status:
        entered.set()
        release.wait(WAIT)
        finished.append(run.version)
        run.object.name = "charged"
        return Status.DONE

    b = Builder("graceful", Doc, Status)
    b.add_step(Status.STARTED, blocking, Status.DONE)
    wf = env.build(b)
    await wf.run()
    rid = await wf.trigger("fid")
    assert await asyncio.to_thread(entered.wait, WAIT)
    # When stop is called while the thread runs
    stopping = asyncio.create_task(wf.stop())
    await settle()
    # Then it waits for the thread
    assert not stopping.done()
    release.set()
    async with asyncio.timeout(WAIT):
        drained = await stopping
    # And the step's result is written: the run completed, nothing is left to redo
    assert drained is True
    assert finished == [1]
    record = await env.store.lookup(rid)
    assert (record.status, record.run_state) == (Status.DONE, RunState.COMPLETED)
    assert b"charged" in record.object
    assert set(wf.states().values()) == {State.SHUTDOWN}
    # And a new instance finds nothing to re-execute
    async with env.build(b) as again:
        await run_until_idle(again, timeout=WAIT)
    assert finished == [1]


async def test_stop_lets_an_async_step_finish_and_writes_its_result(env: Env) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    calls: list[int] = []

    async def step(run: Run[Doc, Status]) -> Status:
        calls.append(run.version)
        entered.set()
        await release.wait()
        return Status.DONE

    b = Builder("drain", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(b)
    await wf.run()
    rid = await wf.trigger("fid")
    async with asyncio.timeout(WAIT):
        await entered.wait()
    # When stop is called while the step runs, and a second run arrives meanwhile
    stopping = asyncio.create_task(wf.stop())
    await settle()
    assert not stopping.done()
    api = env.build(b)
    async with api.client() as client:
        late = await client.trigger("late")
    await settle()
    release.set()
    async with asyncio.timeout(WAIT):
        assert await stopping is True
    # Then the step's result was written, the late run was not started, and the roles
    # were given back
    assert (await env.store.lookup(rid)).status == Status.DONE
    assert (await env.store.lookup(late)).version == 1
    assert env.roles.held_roles() == []
    assert calls == [1]
    # And the next instance runs the late one, once
    async with env.build(b) as again:
        async with asyncio.timeout(WAIT):
            await again.wait("late", late, Status.DONE)
    assert calls == [1, 1]


async def test_stop_at_its_grace_cancels_an_async_step_and_a_restart_runs_it_again(
    env: Env,
) -> None:
    started: list[int] = []
    entered = asyncio.Event()
    block = True

    async def step(run: Run[Doc, Status]) -> Status:
        started.append(run.version)
        entered.set()
        if block:
            await asyncio.Event().wait()  # until cancelled
        return Status.DONE

    b = Builder("restart", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(b)
    await wf.run()
    rid = await wf.trigger("fid")
    async with asyncio.timeout(WAIT):
        await entered.wait()
        drained = await wf.stop(grace=0)
    assert drained is False
    assert (await env.store.lookup(rid)).version == 1
    # When a new instance runs, the unacknowledged event is delivered again
    block = False
    again = env.build(b)
    async with again:
        async with asyncio.timeout(WAIT):
            await again.wait("fid", rid, Status.DONE)
    assert started == [1, 1]


async def test_async_with_runs_and_stops(env: Env) -> None:
    wf: Workflow[Doc, Status] = env.build(full())
    async with wf as running:
        assert running is wf
        await run_until_idle(wf, timeout=WAIT)
        assert wf.states()["outbox-consumer"] is State.RUNNING
    assert wf.states()["outbox-consumer"] is State.SHUTDOWN
