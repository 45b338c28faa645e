"""Poison runs: a run that can never progress is paused with a reason, never blocking its shard."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from conveyor import Builder, Run, RunState, Workflow
from conveyor.testing import run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status, forged_write


def poison_workflow(env: Env, result_for_bad: Any) -> Workflow[Doc, Status]:
    """One step (one shard): run "bad" gets ``result_for_bad``, every other run is DONE."""

    async def step(run: Run[Doc, Status]) -> Any:
        if run.foreign_id == "bad":
            return result_for_bad
        return Status.DONE

    b = Builder("poison", Doc, Status)
    b.add_step(Status.STARTED, step, Status.MIDDLE, Status.DONE)
    b.add_step(Status.MIDDLE, step, Status.DONE)
    return env.build(b)


async def expect_paused_while_others_complete(
    env: Env, wf: Workflow[Doc, Status], reason: str
) -> Run[Doc, Status]:
    """Trigger "bad" first, then 5 good runs; all good runs complete, "bad" is paused."""
    await wf.trigger("bad")
    good = [(f"good-{i}", await wf.trigger(f"good-{i}")) for i in range(5)]
    async with asyncio.timeout(WAIT):
        for fid, rid in good:
            await wf.wait(fid, rid, Status.DONE)
    bad = await wait_for(wf, "bad", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
    assert reason in bad.meta.run_state_reason
    assert bad.status is Status.STARTED
    return bad


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        pytest.param(Status.OTHER_END, "invalid transition from STARTED to OTHER_END", id="enum"),
        pytest.param(Status.STARTED, "invalid transition from STARTED to STARTED", id="self"),
        pytest.param(77, "invalid transition from STARTED to 77", id="unknown-int"),
        pytest.param(None, "step returned None", id="none"),
        pytest.param("DONE", "step returned 'DONE'", id="str"),
        pytest.param(True, "step returned True", id="bool"),
        pytest.param(3.0, "step returned 3.0", id="float"),
    ],
)
async def test_a_bad_result_pauses_the_run(env: Env, result: Any, reason: str) -> None:
    wf = poison_workflow(env, result)
    async with wf:
        bad = await expect_paused_while_others_complete(env, wf, reason)
    assert bad.version == 2


async def test_an_object_that_cannot_be_encoded_pauses_the_run(env: Env) -> None:
    async def step(run: Run[Doc, Status]) -> Status:
        if run.foreign_id == "bad":
            run.object.name = object()  # type: ignore[assignment]
        return Status.DONE

    b = Builder("unencodable", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(b)
    async with wf:
        bad = await expect_paused_while_others_complete(env, wf, "cannot encode")
    assert bad.object == Doc()  # the stored object is kept as it was


@pytest.mark.parametrize(
    "obj",
    [b"{not json", b'{"name": 5}', b"[]"],
    ids=["garbage", "wrong-field-type", "not-an-object"],
)
async def test_an_object_that_no_longer_decodes_pauses_the_run(env: Env, obj: bytes) -> None:
    # Given a stored run whose object does not decode as Doc (e.g. written by an older
    # deployment), queued on the step's topic before a good run
    wf = poison_workflow(env, Status.DONE)
    rid = str(uuid.uuid4())
    await env.store.store(
        forged_write(wf.name, foreign_id="bad", run_id=rid, status=Status.STARTED, obj=obj)
    )
    async with wf:
        good = await wf.trigger("good")
        # Then the good run completes and the bad one is paused with the reason
        async with asyncio.timeout(WAIT):
            await wf.wait("good", good, Status.DONE)
        await run_until_idle(wf, timeout=WAIT)
    record = await env.store.lookup(rid)
    assert record.run_state is RunState.PAUSED
    assert "object no longer decodes" in record.meta.run_state_reason
    assert record.object == obj  # kept for a human to repair
    assert record.version == 2


async def test_a_run_whose_status_left_the_enum_does_not_block_the_shard(env: Env) -> None:
    # Given a stored run at status 42 (no longer in the enum) whose event sits on the
    # STARTED topic ahead of a good run
    calls: list[str] = []

    async def step(run: Run[Doc, Status]) -> Status:
        calls.append(run.foreign_id)
        return Status.DONE

    b = Builder("unknown-status", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    wf = env.build(b)
    rid = str(uuid.uuid4())
    await env.store.store(
        forged_write(
            wf.name,
            foreign_id="bad",
            run_id=rid,
            status=42,
            obj=b"{}",
            event_status=Status.STARTED,
        )
    )
    async with wf:
        good = await wf.trigger("good")
        async with asyncio.timeout(WAIT):
            await wf.wait("good", good, Status.DONE)
        await run_until_idle(wf, timeout=WAIT)
    # Then the step never saw the unknown status, the good run went through, and the bad
    # one is paused saying why (not left stuck without a word)
    assert calls == ["good"]
    bad = await env.store.lookup(rid)
    assert (bad.version, bad.run_state) == (2, RunState.PAUSED)
    assert bad.meta.run_state_reason == "quarantined: status 42 is not one of the workflow's"
