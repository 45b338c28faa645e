"""Several instances of one workflow on shared adapters split the work: each step runs once."""

from __future__ import annotations

import asyncio
from collections import Counter

from conveyor import Builder, Run, RunState
from conveyor.testing import run_until_idle

from ._support import WAIT, Doc, Env, Status


async def test_three_instances_run_each_step_of_each_run_exactly_once(env: Env) -> None:
    # Given three instances built from one builder on the same streamer, store and roles
    executions: Counter[tuple[str, Status]] = Counter()

    async def step(run: Run[Doc, Status]) -> Status:
        executions[(run.run_id, run.status)] += 1
        return Status.MIDDLE if run.status is Status.STARTED else Status.DONE

    b = Builder("multi", Doc, Status)
    b.add_step(Status.STARTED, step, Status.MIDDLE).with_options(parallel_count=3)
    b.add_step(Status.MIDDLE, step, Status.DONE).with_options(parallel_count=2)
    instances = [env.build(b) for _ in range(3)]
    for wf in instances:
        await wf.run()
    try:
        # When 100 runs are triggered through all three
        run_ids = [await instances[i % 3].trigger(f"fid-{i}") for i in range(100)]
        async with asyncio.timeout(WAIT):
            for i, rid in enumerate(run_ids):
                await instances[(i + 1) % 3].wait(f"fid-{i}", rid, Status.DONE)
        await run_until_idle(*instances, timeout=WAIT)
    finally:
        for wf in instances:
            await wf.stop()

    # Then every run completed and each of its steps ran exactly once
    assert {r.run_state for r in env.store.all_records()} == {RunState.COMPLETED}
    assert len(env.store.all_records()) == 100
    expected = {(rid, s) for rid in run_ids for s in (Status.STARTED, Status.MIDDLE)}
    assert set(executions) == expected
    assert set(executions.values()) == {1}


async def test_work_moves_to_the_remaining_instances_when_one_stops(env: Env) -> None:
    executions: Counter[tuple[str, Status]] = Counter()

    async def step(run: Run[Doc, Status]) -> Status:
        executions[(run.run_id, run.status)] += 1
        return Status.MIDDLE if run.status is Status.STARTED else Status.DONE

    b = Builder("handover", Doc, Status)
    b.add_step(Status.STARTED, step, Status.MIDDLE).with_options(parallel_count=2)
    b.add_step(Status.MIDDLE, step, Status.DONE)
    first, second, third = (env.build(b) for _ in range(3))
    for wf in (first, second, third):
        await wf.run()
    try:
        await run_until_idle(first, second, third, timeout=WAIT)
        # Given work in flight on the instance that holds the roles
        run_ids = [await first.trigger(f"fid-{i}") for i in range(30)]
        # When it stops
        await first.stop()
        run_ids += [await second.trigger(f"fid-{i}") for i in range(30, 60)]
        # Then the others finish everything, once
        async with asyncio.timeout(WAIT):
            for i, rid in enumerate(run_ids):
                await third.wait(f"fid-{i}", rid, Status.DONE)
    finally:
        for wf in (first, second, third):
            await wf.stop()
    assert len(executions) == 120
    assert set(executions.values()) == {1}


async def test_every_role_is_held_by_exactly_one_instance(env: Env) -> None:
    b = Builder("roles", Doc, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE).with_options(parallel_count=4)
    instances = [env.build(b) for _ in range(3)]
    for wf in instances:
        await wf.run()
    try:
        await run_until_idle(*instances, timeout=WAIT)
        running = Counter(
            name
            for wf in instances
            for name, state in wf.states().items()
            if state.name == "RUNNING"
        )
        assert set(running) == set(instances[0].process_names())
        assert set(running.values()) == {1}
    finally:
        for wf in instances:
            await wf.stop()
