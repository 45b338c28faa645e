"""Steps: what the engine does with what a step returns."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from conveyor import Builder, Run, RunState
from conveyor.testing import run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status, forged_write, to_middle


async def test_each_write_increases_the_version_by_one(env: Env) -> None:
    async def a(run: Run[Doc, Status]) -> Status:
        return Status.MIDDLE

    async def b(run: Run[Doc, Status]) -> Status:
        return Status.DONE

    builder = Builder("versions", Doc, Status)
    builder.add_step(Status.STARTED, a, Status.MIDDLE)
    builder.add_step(Status.MIDDLE, b, Status.DONE)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    history = env.store.snapshots(wf.name, "fid", rid)
    assert [(r.version, r.status, r.run_state) for r in history] == [
        (1, Status.STARTED, RunState.INITIATED),
        (2, Status.MIDDLE, RunState.RUNNING),
        (3, Status.DONE, RunState.COMPLETED),
    ]
    assert [r.meta.status_description for r in history] == ["STARTED", "MIDDLE", "DONE"]
    assert run.version == 3
    assert run.run_state is RunState.COMPLETED


async def test_changes_to_the_object_are_saved_with_the_next_status(env: Env) -> None:
    async def a(run: Run[Doc, Status]) -> Status:
        run.object.items.append("a")
        return Status.MIDDLE

    async def b(run: Run[Doc, Status]) -> Status:
        assert run.object.items == ["a"]
        run.object.items.append("b")
        return Status.DONE

    builder = Builder("edits", Doc, Status)
    builder.add_step(Status.STARTED, a, Status.MIDDLE)
    builder.add_step(Status.MIDDLE, b, Status.DONE)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid", initial=Doc(name="n"))
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    assert run.object == Doc(name="n", items=["a", "b"])
    objects = [r.object for r in env.store.snapshots(wf.name, "fid", rid)]
    assert objects[1] == b'{"name":"n","items":["a"],"attempts":0}'


async def test_the_step_sees_running_and_the_idempotency_key(env: Env) -> None:
    seen: list[tuple[RunState, str, int]] = []

    async def step(run: Run[Doc, Status]) -> Status:
        seen.append((run.run_state, run.idempotency_key, run.version))
        return Status.DONE if run.status is Status.MIDDLE else Status.MIDDLE

    builder = Builder("keys", Doc, Status)
    builder.add_step(Status.STARTED, step, Status.MIDDLE)
    builder.add_step(Status.MIDDLE, step, Status.DONE)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
    # Initiated shows as Running to the step (nothing is written for it)
    assert seen == [
        (RunState.RUNNING, f"{rid}:1", 1),
        (RunState.RUNNING, f"{rid}:2", 2),
    ]


async def test_plain_def_steps_run_in_a_worker_thread(env: Env) -> None:
    threads: list[threading.Thread] = []

    def sync_step(run: Run[Doc, Status]) -> Status:
        threads.append(threading.current_thread())
        run.object.name = "from a thread"
        return Status.DONE

    builder = Builder("threads", Doc, Status)
    builder.add_step(Status.STARTED, sync_step, Status.DONE)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    assert len(threads) == 1
    assert threads[0] is not threading.main_thread()
    assert run.object.name == "from a thread"


async def test_async_steps_run_on_the_event_loop(env: Env) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def step(run: Run[Doc, Status]) -> Status:
        loops.append(asyncio.get_running_loop())
        return Status.DONE

    builder = Builder("loop", Doc, Status)
    builder.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
    assert loops == [asyncio.get_running_loop()]


async def test_a_step_that_raises_is_retried_until_it_succeeds(env: Env) -> None:
    calls: list[str] = []

    async def flaky(run: Run[Doc, Status]) -> Status:
        calls.append(run.idempotency_key)
        if len(calls) < 4:
            raise RuntimeError(f"attempt {len(calls)} failed")
        return Status.DONE

    builder = Builder("flaky", Doc, Status)
    builder.add_step(Status.STARTED, flaky, Status.DONE).with_options(err_backoff=0.001)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
    # Every retry is the same attempt (same version), and nothing was written in between
    assert calls == [f"{rid}:1"] * 4
    assert [r.version for r in env.store.snapshots(wf.name, "fid", rid)] == [1, 2]


async def test_changes_made_by_a_failed_attempt_are_discarded(env: Env) -> None:
    seen: list[list[str]] = []

    async def step(run: Run[Doc, Status]) -> Status:
        seen.append(list(run.object.items))
        run.object.items.append("attempt")
        if len(seen) < 3:
            raise RuntimeError("try again")
        return Status.DONE

    builder = Builder("discard", Doc, Status)
    builder.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    # Each attempt starts from the stored object; only the successful one is saved
    assert seen == [[], [], []]
    assert run.object.items == ["attempt"]


async def test_a_terminal_status_completes_the_run(env: Env) -> None:
    async def step(run: Run[Doc, Status]) -> Status:
        return Status.OTHER_END

    builder = Builder("ends", Doc, Status)
    builder.add_step(Status.STARTED, step, Status.DONE, Status.OTHER_END)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.OTHER_END)
    assert run.status is Status.OTHER_END
    assert run.run_state is RunState.COMPLETED


async def test_returning_zero_writes_nothing(env: Env) -> None:
    calls = 0

    async def step(run: Run[Doc, Status]) -> Status:
        nonlocal calls
        calls += 1
        return Status.UNKNOWN

    builder = Builder("zero", Doc, Status)
    builder.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
    assert calls == 1
    assert [r.version for r in env.store.snapshots(wf.name, "fid", rid)] == [1]


async def test_a_self_loop_re_runs_the_step_on_the_new_version(env: Env) -> None:
    async def loop(run: Run[Doc, Status]) -> Status:
        run.object.attempts += 1
        return Status.DONE if run.object.attempts == 3 else Status.MIDDLE

    builder = Builder("selfloop", Doc, Status)
    builder.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    builder.add_step(Status.MIDDLE, loop, Status.MIDDLE, Status.DONE)
    wf = env.build(builder)
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    assert run.object.attempts == 3
    history = env.store.snapshots(wf.name, "fid", rid)
    assert [r.status for r in history] == [
        Status.STARTED,
        Status.MIDDLE,
        Status.MIDDLE,
        Status.MIDDLE,
        Status.DONE,
    ]


async def test_stopped_runs_are_skipped_by_step_consumers(env: Env) -> None:
    # Given a run paused before its step consumer could see it
    calls = 0

    async def step(run: Run[Doc, Status]) -> Status:
        nonlocal calls
        calls += 1
        return Status.DONE

    builder = Builder("stopped", Doc, Status)
    builder.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(builder)
    await wf.run()
    try:
        rid = await wf.trigger("fid")
        await wf.pause(rid, "not now")  # same tick: the step's event is still in the outbox
        # When
        await run_until_idle(wf, timeout=WAIT)
        # Then the event of version 1 was consumed, and the step did not run
        assert calls == 0
        record = await env.store.lookup(rid)
        assert (record.run_state, record.version) == (RunState.PAUSED, 2)
        # And a resume runs the step
        await wf.resume(rid)
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
        assert calls == 1
    finally:
        await wf.stop()


@pytest.mark.parametrize(
    "state",
    [RunState.PAUSED, RunState.CANCELLED, RunState.REQUESTED_DATA_DELETED, RunState.DATA_DELETED],
)
async def test_a_stopped_record_is_skipped_even_if_the_event_is_current(
    env: Env, state: RunState
) -> None:
    # Given a stopped record whose event (same version) sits on the step's topic, as a
    # backend that replays events might deliver it
    calls: list[str] = []

    async def step(run: Run[Doc, Status]) -> Status:
        calls.append(run.foreign_id)
        return Status.DONE

    builder = Builder("stopped-current", Doc, Status)
    builder.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(builder)
    rid = str(uuid.uuid4())
    await env.store.store(
        forged_write(
            wf.name,
            foreign_id="stopped",
            run_id=rid,
            status=Status.STARTED,
            obj=b"{}",
            run_state=state,
            event_status=Status.STARTED,
        )
    )
    async with wf:
        good = await wf.trigger("good")
        async with asyncio.timeout(WAIT):
            await wf.wait("good", good, Status.DONE)
        await run_until_idle(wf, timeout=WAIT)
    # Then only the good run's step ran
    assert calls == ["good"]
    assert (await env.store.lookup(rid)).version == 1


async def test_many_runs_complete_independently(env: Env) -> None:
    async def step(run: Run[Doc, Status]) -> Status:
        run.object.items.append(run.foreign_id)
        return Status.DONE

    builder = Builder("many", Doc, Status)
    builder.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(builder)
    async with wf:
        for i in range(20):
            await wf.trigger(f"f{i}")
        for i in range(20):
            run = await wait_for(
                wf, f"f{i}", lambda r: r.run_state is RunState.COMPLETED, timeout=WAIT
            )
            assert run.object.items == [f"f{i}"]
