"""The operator layer: what the UI, the API and the CLI do to runs with only a store."""

from __future__ import annotations

import enum

import pytest

from conveyor import Builder, Run, RunState, connect
from conveyor._capabilities import RecordsFailures
from conveyor._operator import Operator, UnknownStatus
from conveyor.testing import wait_for

from ._seed import Parcel, Ship, build, parcels


async def test_a_retry_makes_a_running_worker_attempt_the_run_now() -> None:
    attempts: list[str] = []

    async def flaky(run: Run[Parcel, Ship]) -> Ship:
        attempts.append(run.run_id)
        if len(attempts) == 1:
            raise RuntimeError("carrier down")
        return Ship.PACKED

    b = Builder("parcels", Parcel, Ship)
    b.add_step(Ship.PLACED, flaky, Ship.PACKED).with_options(
        err_backoff=3600.0, pause_after_err_count=100
    )
    b.add_callback(Ship.PACKED, lambda run, payload: Ship.SHIPPED, Ship.SHIPPED)
    async with connect("memory://") as backend:
        store = backend.record_store
        assert isinstance(store, RecordsFailures)
        async with b.build(backend.streamer, store, backend.role_scheduler) as wf:
            run_id = await wf.trigger("p1", initial=Parcel())

            async def failed(run: Run[Parcel, Ship]) -> bool:
                return bool(await store.failures(run_id, run.meta.version))

            await wait_for(wf, "p1", failed)
            operator = Operator(store)
            detail = await operator.detail(run_id)
            assert detail.waiting_for_retry
            assert "retry" in detail.actions
            await operator.act("retry", run_id[:8])
            run = await wait_for(wf, "p1", lambda r: r.status is Ship.PACKED, timeout=10)
    assert attempts == [run_id, run_id]
    assert run.meta.run_state_reason == ""  # the step's write clears the retry's reason


async def test_status_names_are_read_from_every_registered_definition() -> None:
    class Other(enum.IntEnum):
        UNKNOWN = 0
        PACKED = 7
        DONE = 8

    async def step(run: Run[Parcel, Other]) -> Other:
        return Other.DONE

    other = Builder("other", Parcel, Other)
    other.add_step(Other.PACKED, step, Other.DONE)
    async with connect("memory://") as backend:
        for builder in (parcels(), other):
            wf = builder.build(backend.streamer, backend.record_store, backend.role_scheduler)
            async with wf.client():
                pass
        operator = Operator(backend.record_store)
        assert await operator.statuses(["PLACED", "3"]) == (1, 3)
        assert await operator.statuses(["packed"], "parcels") == (2,)
        assert await operator.statuses(["packed"], "other") == (7,)
        with pytest.raises(UnknownStatus, match="different numbers in different workflows"):
            await operator.statuses(["PACKED"])
        with pytest.raises(UnknownStatus, match="not a status of workflow 'other'"):
            await operator.statuses(["PLACED"], "other")
        assert await operator.status_name("other", 8) == "DONE"
        assert await operator.status_name("nobody", 8) == "8"


async def test_a_resume_clears_the_reason_and_other_actions_keep_it_when_given_none() -> None:
    async with connect("memory://") as backend:
        wf = build(backend)
        async with wf:
            run_id = await wf.trigger("p1", initial=Parcel())
            await wf.wait("p1", run_id, Ship.PACKED)
        operator = Operator(backend.record_store)
        paused = await operator.act("pause", run_id, "hold it")
        assert (paused.run_state, paused.meta.run_state_reason) == (RunState.PAUSED, "hold it")
        cancelled = await operator.act("cancel", run_id)
        assert cancelled.meta.run_state_reason == "hold it"
        deleted = await operator.act("delete", run_id, "GDPR request")
        assert deleted.meta.run_state_reason == "GDPR request"
