"""Trigger: starting a run for a foreign ID."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conveyor import InvalidObject, InvalidTransition, NotRunning, RunState, WorkflowInProgress

from ._support import WAIT, Doc, Env, Status, linear, parked


async def test_trigger_stores_version_1_initiated_at_the_starting_status(env: Env) -> None:
    wf = env.build(parked())
    async with wf:
        # When
        rid = await wf.trigger("fid", initial=Doc(name="ada"))
        # Then
        assert uuid.UUID(rid).version == 4
        record = await env.store.lookup(rid)
        assert record.workflow_name == "parked"
        assert record.foreign_id == "fid"
        assert record.run_id == rid
        assert record.run_state is RunState.INITIATED
        assert record.status == Status.STARTED
        assert record.version == 1
        assert record.meta.status_description == "STARTED"
        assert record.meta.run_state_reason == ""
        assert record.created_at == record.updated_at == env.clock.now()
        assert record.object == b'{"name":"ada","items":[],"attempts":0}'


async def test_trace_origin_names_the_caller(env: Env) -> None:
    wf = env.build(parked())
    async with wf:
        rid = await wf.trigger("fid")
        record = await env.store.lookup(rid)
    assert __file__ in record.meta.trace_origin
    assert "test_trace_origin_names_the_caller" in record.meta.trace_origin
    assert "conveyor/_" not in record.meta.trace_origin


async def test_without_initial_the_object_is_the_zero_value(env: Env) -> None:
    wf = env.build(parked())
    async with wf:
        rid = await wf.trigger("fid")
        run = await wf.lookup(rid)
    assert run.object == Doc()


async def test_start_at_picks_the_starting_status(env: Env) -> None:
    wf = env.build(linear())
    async with wf:
        rid = await wf.trigger("fid", start_at=Status.MIDDLE)
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", rid, Status.DONE)
    statuses = [r.status for r in env.store.snapshots(wf.name, "fid", rid)]
    assert statuses == [Status.MIDDLE, Status.DONE]


@pytest.mark.parametrize("status", [Status.UNUSED, 42])
async def test_start_at_must_be_a_node_of_the_graph(env: Env, status: Status) -> None:
    wf = env.build(linear())
    async with wf:
        with pytest.raises(InvalidTransition, match="is not part of workflow"):
            await wf.trigger("fid", start_at=status)
    assert env.store.all_records() == []


async def test_trigger_before_run_raises_not_running(env: Env) -> None:
    wf = env.build(parked())
    with pytest.raises(NotRunning, match=r"cannot trigger: workflow .* is not running"):
        await wf.trigger("fid")
    assert env.store.all_records() == []


async def test_trigger_after_stop_raises_not_running(env: Env) -> None:
    wf = env.build(parked())
    async with wf:
        await wf.trigger("a")
    with pytest.raises(NotRunning):
        await wf.trigger("b")


async def test_an_active_run_blocks_a_second_trigger(env: Env) -> None:
    wf = env.build(parked())
    async with wf:
        rid = await wf.trigger("fid")
        # Initiated
        with pytest.raises(WorkflowInProgress, match="already has a run in progress"):
            await wf.trigger("fid")
        # Paused
        await wf.pause(rid, "hold on")
        with pytest.raises(WorkflowInProgress):
            await wf.trigger("fid")
        # Another foreign ID is not affected
        await wf.trigger("other")
    assert [r.run_id for r in env.store.all_records() if r.foreign_id == "fid"] == [rid]


async def test_a_cancelled_run_allows_a_new_run(env: Env) -> None:
    wf = env.build(parked())
    async with wf:
        first = await wf.trigger("fid")
        await wf.pause(first)
        await wf.cancel(first, "changed my mind")
        second = await wf.trigger("fid")
    assert second != first
    latest = await env.store.latest(wf.name, "fid")
    assert latest.run_id == second
    assert latest.run_state is RunState.INITIATED


async def test_a_completed_run_allows_a_new_run(env: Env) -> None:
    wf = env.build(linear())
    async with wf:
        first = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", first, Status.DONE)
        second = await wf.trigger("fid")
        assert second != first
        async with asyncio.timeout(WAIT):
            await wf.wait("fid", second, Status.DONE)
    assert [r.run_id for r in await wf.list_runs("fid")] == [first, second]


async def test_concurrent_triggers_for_one_foreign_id_have_exactly_one_winner(env: Env) -> None:
    wf = env.build(parked())
    async with wf:
        # When
        results = await asyncio.gather(
            *(wf.trigger("fid", initial=Doc(name=str(i))) for i in range(10)),
            return_exceptions=True,
        )
    # Then
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 9
    assert all(isinstance(e, WorkflowInProgress) for e in losers)
    assert [r.run_id for r in env.store.all_records()] == winners


async def test_an_initial_object_of_another_type_is_refused_at_once(env: Env) -> None:
    wf = env.build(linear("typed"))
    async with wf:
        with pytest.raises(InvalidObject, match=r"initial must be a Doc .* not dict"):
            await wf.trigger("fid", initial={"name": "ada"})
        assert await wf.list_runs("fid") == []
    assert issubclass(InvalidObject, TypeError)
