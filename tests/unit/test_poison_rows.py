"""Poison rows affect their run alone: the engine pauses what it can write, skips what it
cannot, and the consumers, the relay and other callers go on.

``PoisonedStore`` is a memory store that plays a store whose rows went bad the way the
record-store contract says a store reports them: ``lookup`` of a poisoned run raises
``DecodeError`` with a stand-in record (run state ``UNKNOWN``), and an outbox row whose
headers do not decode is listed with empty headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from conveyor import Builder, DecodeError, Run, RunState, Workflow
from conveyor.abc import Meta, OutboxEvent, Record
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.testing import run_until_idle

from ._support import WAIT, Doc, Status


class PoisonedStore(MemoryRecordStore):
    def __init__(self, poisoned_while: RunState = RunState.INITIATED) -> None:
        super().__init__()
        self.poisoned: set[str] = set()
        self.bad_headers: set[str] = set()
        self._while = poisoned_while

    async def lookup(self, run_id: str) -> Record:
        record = await super().lookup(run_id)
        if run_id in self.poisoned and record.run_state is self._while:
            stand_in = record.replace(
                run_state=RunState.UNKNOWN,
                meta=Meta(
                    run_state_reason="undecodable record: run_state 42 is not a RunState",
                    version=record.meta.version,
                ),
            )
            raise DecodeError(f"run {run_id}: run_state 42 is not a RunState", stand_in)
        return record

    async def list_outbox_events(self, workflow_name: str, limit: int) -> Sequence[OutboxEvent]:
        listed = await super().list_outbox_events(workflow_name, limit)
        return [
            dataclasses.replace(e, headers={}) if e.run_id in self.bad_headers else e
            for e in listed
        ]


async def to_done(run: Run[Doc, Status]) -> Status:
    return Status.DONE


def build(store: PoisonedStore, streamer: MemoryEventStreamer) -> Workflow[Doc, Status]:
    b = Builder("poison", Doc, Status)
    b.add_step(Status.STARTED, to_done, Status.DONE)
    return b.build(streamer, store, MemoryRoleScheduler(), pause_retry=None)


async def test_a_run_whose_record_does_not_decode_is_paused_and_the_others_complete() -> None:
    store, streamer = PoisonedStore(), MemoryEventStreamer()
    wf = build(store, streamer)
    async with wf.client() as client:
        bad = await client.trigger("bad")
        store.poisoned.add(bad)
        good = [await client.trigger(f"g-{i}") for i in range(20)]
    async with wf:
        async with asyncio.timeout(WAIT):
            for i, rid in enumerate(good):
                await wf.wait(f"g-{i}", rid, Status.DONE)
        await run_until_idle(wf, timeout=WAIT)
    record = await store.lookup(bad)
    assert record.run_state is RunState.PAUSED
    assert record.meta.run_state_reason == (
        "quarantined: run " + bad + ": run_state 42 is not a RunState"
    )
    assert record.meta.version == 2  # paused by a compare-and-set on the stand-in's version


async def test_a_wait_on_a_poisoned_run_raises_decode_error_and_others_return() -> None:
    # Given a run whose record goes bad once it has completed, and a healthy one
    store, streamer = PoisonedStore(poisoned_while=RunState.COMPLETED), MemoryEventStreamer()
    api, worker = build(store, streamer), build(store, streamer)
    async with api.client() as client:
        bad = await client.trigger("bad")
        good = await client.trigger("good")
        store.poisoned.add(bad)
        waiting_bad = asyncio.create_task(client.wait("bad", bad, Status.DONE))
        waiting_good = asyncio.create_task(client.wait("good", good, Status.DONE))
        # When both complete, the bad one's wait gets its DecodeError and the other its run
        async with worker, asyncio.timeout(WAIT):
            assert (await waiting_good).status is Status.DONE
            with pytest.raises(DecodeError) as caught:
                await waiting_bad
    assert caught.value.run_id == bad


async def test_an_outbox_row_without_headers_is_sent_as_its_run_s_event() -> None:
    store, streamer = PoisonedStore(), MemoryEventStreamer()
    wf = build(store, streamer)
    async with wf.client() as client:
        rid = await client.trigger("lost-headers")
        store.bad_headers.add(rid)
    async with wf, asyncio.timeout(WAIT):
        run = await wf.wait("lost-headers", rid, Status.DONE)
    assert run.run_state is RunState.COMPLETED
    assert store.outbox_size() == 0
