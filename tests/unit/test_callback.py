"""callback(): an outside caller moves the latest run of a foreign ID."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from conveyor import (
    Builder,
    CallbackRejected,
    InvalidTransition,
    RecordNotFound,
    Run,
    RunState,
    Workflow,
)
from conveyor.testing import trigger_callback_on

from ._support import WAIT, Doc, Env, Status, never_called, to_done


def approval(env: Env, fn: Any, *to: Status) -> Workflow[Doc, Status]:
    """A run waits at STARTED for the callback ``fn``."""
    b = Builder("approval", Doc, Status)
    b.add_callback(Status.STARTED, fn, *(to or (Status.DONE,)))
    return env.build(b)


async def test_a_callback_moves_the_run_with_the_payload(env: Env) -> None:
    payloads: list[bytes] = []

    async def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        payloads.append(payload)
        run.object.name = json.loads(payload)["by"]
        return Status.DONE

    wf = approval(env, approve)
    async with wf:
        rid = await wf.trigger("fid")
        await wf.callback("fid", Status.STARTED, b'{"by": "alice"}')
        record = await env.store.lookup(rid)
    assert payloads == [b'{"by": "alice"}']
    assert (record.status, record.run_state, record.version) == (
        Status.DONE,
        RunState.COMPLETED,
        2,
    )
    assert record.object == b'{"name":"alice","items":[],"attempts":0}'


async def test_a_plain_def_callback_runs_in_a_thread(env: Env) -> None:
    threads: list[threading.Thread] = []

    def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        threads.append(threading.current_thread())
        return Status.DONE

    wf = approval(env, approve)
    async with wf:
        rid = await wf.trigger("fid")
        await wf.callback("fid", Status.STARTED)
        assert (await env.store.lookup(rid)).status == Status.DONE
    assert threads[0] is not threading.main_thread()


async def test_a_callback_returns_the_run_as_it_left_it(env: Env) -> None:
    async def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        run.object.name = payload.decode()
        return Status.DONE

    wf = approval(env, approve)
    async with wf:
        rid = await wf.trigger("fid")
        run = await wf.callback("fid", Status.STARTED, b"alice")
    assert (run.run_id, run.status, run.run_state, run.object.name) == (
        rid,
        Status.DONE,
        RunState.COMPLETED,
        "alice",
    )
    assert run.meta.version == 2


async def test_a_callback_for_a_run_at_another_status_is_rejected_and_writes_nothing(
    env: Env,
) -> None:
    calls = 0

    async def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        nonlocal calls
        calls += 1
        return Status.MIDDLE

    async def finish(run: Run[Doc, Status], payload: bytes) -> Status:
        nonlocal calls
        calls += 1
        return Status.DONE

    b = Builder("two-callbacks", Doc, Status)
    b.add_callback(Status.STARTED, approve, Status.MIDDLE)
    b.add_callback(Status.MIDDLE, finish, Status.DONE)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid")
        # When calling back for MIDDLE while the run is at STARTED (an early webhook)
        with pytest.raises(CallbackRejected, match="it is at STARTED") as rejected:
            await wf.callback("fid", Status.MIDDLE, b"early")
        # Then the caller learns why, with the run as it is, and nothing happened
        assert rejected.value.reason == "not_at_status"
        assert isinstance(rejected.value, InvalidTransition)
        assert (rejected.value.record.run_id, rejected.value.record.status) == (
            rid,
            Status.STARTED,
        )
        assert calls == 0
        assert (await env.store.lookup(rid)).version == 1


async def test_a_callback_for_a_status_without_callbacks_raises_at_once(env: Env) -> None:
    wf = approval(env, never_called)
    async with wf:
        # No run exists at all: the mistake is in the call, so it is reported first
        with pytest.raises(InvalidTransition, match="DONE of workflow 'approval' has no callback"):
            await wf.callback("nobody", Status.DONE, b"")
        # The same error trigger and wait raise for a status the workflow lacks
        with pytest.raises(InvalidTransition, match="not part of workflow") as err:
            await wf.callback("nobody", Status.UNUSED, b"")
        with pytest.raises(type(err.value), match="not part of workflow"):
            await wf.trigger("fid", start_at=Status.UNUSED)
        rid = await wf.trigger("fid")
        with pytest.raises(type(err.value), match="not part of workflow"):
            await wf.wait("fid", rid, Status.UNUSED)


async def test_a_callback_on_a_paused_or_finished_run_is_rejected(env: Env) -> None:
    async def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        raise AssertionError("must not be called for a stopped run")

    wf = approval(env, approve)
    async with wf:
        rid = await wf.trigger("fid")
        await wf.pause(rid)
        with pytest.raises(CallbackRejected, match="it is Paused") as paused:
            await wf.callback("fid", Status.STARTED, b"x")
        assert paused.value.reason == "stopped"
        assert (await env.store.lookup(rid)).run_state is RunState.PAUSED
        await wf.cancel(rid)
        with pytest.raises(CallbackRejected, match="finished") as cancelled:
            await wf.callback("fid", Status.STARTED, b"x")
        assert cancelled.value.reason == "finished"
        assert cancelled.value.record.run_state is RunState.CANCELLED


async def test_a_callback_whose_write_loses_to_a_racing_step_is_rejected_as_moved(
    env: Env,
) -> None:
    # Given a run at STARTED that a step and a callback may both move
    go = asyncio.Event()
    callback_ran = False

    async def slow_step(run: Run[Doc, Status]) -> Status:
        await go.wait()
        return Status.MIDDLE

    b = Builder("race", Doc, Status)
    b.add_step(Status.STARTED, slow_step, Status.MIDDLE)
    b.add_step(Status.MIDDLE, to_done, Status.DONE)

    async def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        nonlocal callback_ran
        callback_ran = True
        # While the callback works, the step finishes and moves the run on
        go.set()
        await wf.wait(run.foreign_id, run.run_id, Status.MIDDLE)
        return Status.OTHER_END

    b.add_callback(Status.STARTED, approve, Status.OTHER_END)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid")
        # When the callback's write comes second
        with pytest.raises(CallbackRejected, match="moved on") as rejected:
            await wf.callback("fid", Status.STARTED, b"")
        # Then the callback did run, its result was not written, and the run went the
        # step's way
        assert callback_ran
        assert rejected.value.reason == "moved"
        assert rejected.value.record.status in (Status.MIDDLE, Status.DONE)
        done = await asyncio.wait_for(wf.wait("fid", rid, Status.DONE), WAIT)
    assert Status.OTHER_END not in done.meta.reached


async def test_a_callback_targets_the_latest_run(env: Env) -> None:
    moved: list[str] = []

    async def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        moved.append(run.run_id)
        return Status.DONE

    wf = approval(env, approve)
    async with wf:
        old = await wf.trigger("fid")
        await wf.pause(old)
        await wf.cancel(old)
        new = await wf.trigger("fid")
        await wf.callback("fid", Status.STARTED, b"")
    assert moved == [new]
    assert old != new


async def test_errors_of_the_callback_are_raised_to_the_caller(env: Env) -> None:
    async def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        raise PermissionError("not allowed")

    wf = approval(env, approve)
    async with wf:
        rid = await wf.trigger("fid")
        with pytest.raises(PermissionError, match="not allowed"):
            await wf.callback("fid", Status.STARTED, b"")
        record = await env.store.lookup(rid)
    assert (record.version, record.run_state) == (1, RunState.INITIATED)


async def test_an_unknown_foreign_id_raises_record_not_found(env: Env) -> None:
    wf = approval(env, lambda run, payload: Status.DONE)
    async with wf:
        with pytest.raises(RecordNotFound):
            await wf.callback("nobody", Status.STARTED, b"")


@pytest.mark.parametrize("result", [Status.MIDDLE, 42, None, "DONE"])
async def test_an_invalid_result_raises_invalid_transition(env: Env, result: Any) -> None:
    async def approve(run: Run[Doc, Status], payload: bytes) -> Any:
        return result

    wf = approval(env, approve)
    async with wf:
        rid = await wf.trigger("fid")
        with pytest.raises(InvalidTransition):
            await wf.callback("fid", Status.STARTED, b"")
        assert (await env.store.lookup(rid)).version == 1


async def test_a_skipping_callback_writes_nothing_and_markers_work(env: Env) -> None:
    async def approve(run: Run[Doc, Status], payload: bytes) -> Any:
        if payload == b"skip":
            return run.skip()
        run.object.name = "paused by callback"
        return run.pause("needs review")

    wf = approval(env, approve)
    async with wf:
        rid = await wf.trigger("fid")
        await wf.callback("fid", Status.STARTED, b"skip")
        assert (await env.store.lookup(rid)).version == 1
        await wf.callback("fid", Status.STARTED, b"pause")
        record = await env.store.lookup(rid)
    assert (record.version, record.run_state) == (2, RunState.PAUSED)
    assert record.meta.run_state_reason == "needs review"
    assert b"paused by callback" in record.object


async def test_several_callbacks_for_a_status_are_tried_in_order(env: Env) -> None:
    order: list[str] = []

    async def first(run: Run[Doc, Status], payload: bytes) -> Any:
        order.append("first")
        return run.skip() if payload == b"second" else Status.MIDDLE

    async def second(run: Run[Doc, Status], payload: bytes) -> Any:
        order.append("second")
        return Status.DONE

    b = Builder("several", Doc, Status)
    b.add_callback(Status.STARTED, first, Status.MIDDLE)
    b.add_callback(Status.STARTED, second, Status.DONE)
    wf = env.build(b)
    async with wf:
        a = await wf.trigger("a")
        await wf.callback("a", Status.STARTED, b"first")  # first moves it; second sees MIDDLE
        bb = await wf.trigger("b")
        await wf.callback("b", Status.STARTED, b"second")  # first skips; second moves it
        assert (await env.store.lookup(a)).status == Status.MIDDLE
        assert (await env.store.lookup(bb)).status == Status.DONE
    assert order == ["first", "first", "second"]


async def test_trigger_callback_on_waits_then_sends_json(env: Env) -> None:
    async def approve(run: Run[Doc, Status], payload: bytes) -> Status:
        run.object.items = json.loads(payload)["items"]
        return Status.DONE

    async def step(run: Run[Doc, Status]) -> Status:
        return Status.MIDDLE

    b = Builder("helper", Doc, Status)
    b.add_step(Status.STARTED, step, Status.MIDDLE)
    b.add_callback(Status.MIDDLE, approve, Status.DONE)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid")
        await trigger_callback_on(
            wf, "fid", rid, Status.MIDDLE, {"items": ["a", "b"]}, timeout=WAIT
        )
        async with asyncio.timeout(WAIT):
            run = await wf.wait("fid", rid, Status.DONE)
    assert run.object.items == ["a", "b"]
