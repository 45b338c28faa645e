"""delete_data: a finished run's object is scrubbed by the delete consumer (DataDeleted)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conveyor import Builder, InvalidTransition, RunState, Workflow
from conveyor.testing import run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status, linear


async def completed(wf: Workflow[Doc, Status], fid: str = "fid") -> str:
    rid = await wf.trigger(fid, initial=Doc(name="Ada Lovelace", items=["card 4242"]))
    async with asyncio.timeout(WAIT):
        await wf.wait(fid, rid, Status.DONE)
    return rid


async def test_delete_data_replaces_the_object_with_a_marker(env: Env) -> None:
    wf = env.build(linear("delete"))
    async with wf:
        rid = await completed(wf)
        # When
        requested = await wf.delete_data(rid, "gdpr request")
        assert requested.run_state is RunState.REQUESTED_DATA_DELETED
        await wait_for(wf, "fid", lambda r: r.run_state is RunState.DATA_DELETED, timeout=WAIT)
    # Then
    record = await env.store.lookup(rid)
    assert record.object == b'{"result":"deleted"}'
    assert (record.run_state, record.version, record.status) == (
        RunState.DATA_DELETED,
        5,
        Status.DONE,
    )
    assert record.meta.run_state_reason == "gdpr request"
    assert "delete-consumer" in wf.process_names()


async def test_delete_data_of_a_cancelled_run_and_again_after_deletion(env: Env) -> None:
    b = Builder("delete-again", Doc, Status)
    b.add_callback(Status.STARTED, lambda run, payload: Status.DONE, Status.DONE)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid", initial=Doc(name="secret"))
        await wf.pause(rid)
        await wf.cancel(rid)
        await wf.delete_data(rid)
        await run_until_idle(wf, timeout=WAIT)
        assert (await env.store.lookup(rid)).run_state is RunState.DATA_DELETED
        # Deleting again is allowed (DataDeleted -> RequestedDataDeleted -> DataDeleted)
        await wf.delete_data(rid, "again")
        await run_until_idle(wf, timeout=WAIT)
        record = await env.store.lookup(rid)
    assert (record.run_state, record.version) == (RunState.DATA_DELETED, 7)


async def test_an_active_run_cannot_have_its_data_deleted(env: Env) -> None:
    b = Builder("delete-active", Doc, Status)
    b.add_callback(Status.STARTED, lambda run, payload: Status.DONE, Status.DONE)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid")
        with pytest.raises(InvalidTransition):
            await wf.delete_data(rid)


def scrub_in_place(doc: Doc) -> None:
    doc.name = "*" * len(doc.name)


async def scrub_async(doc: Doc) -> Doc:
    return Doc(name="redacted", items=[], attempts=doc.attempts)


@pytest.mark.parametrize(
    ("custom", "expected"),
    [
        pytest.param(
            scrub_in_place,
            Doc(name="*" * len("Ada Lovelace"), items=["card 4242"]),
            id="sync-in-place",
        ),
        pytest.param(scrub_async, Doc(name="redacted"), id="async-returns-new"),
    ],
)
async def test_custom_delete_scrubs_the_object(env: Env, custom: Any, expected: Doc) -> None:
    wf = env.build(linear("custom-delete"), custom_delete=custom)
    async with wf:
        rid = await completed(wf)
        await wf.delete_data(rid)
        run = await wait_for(
            wf, "fid", lambda r: r.run_state is RunState.DATA_DELETED, timeout=WAIT
        )
    assert run.object == expected
    assert run.run_id == rid
