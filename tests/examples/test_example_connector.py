"""examples/connector.py: an outside stream starts one run per payout, calls runs back when
they settle, and its duplicates start nothing."""

from __future__ import annotations

from dataclasses import replace

from connector import Payout, builder, payment_events

from conveyor import ConnectorEvent, RunState
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)
from conveyor.testing import run_until_idle


async def test_stream_events_start_runs_and_settle_them_once_each() -> None:
    amounts = {f"p-{i}": 100 * i for i in range(1, 13)}  # p-11 and p-12 exceed the limit
    events = list(payment_events(amounts))
    again = [replace(e, id=f"{e.id}-again") for e in events]  # the producer sent each twice
    stream = MemoryConnector([*events, *again])
    wf = builder(stream).build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    async with wf:
        await run_until_idle(wf)
        settled = [ConnectorEvent(id=f"stl-{f}", foreign_id=f, type="settled") for f in amounts]
        stream.add(*settled, *(replace(e, id=f"{e.id}-again") for e in settled))
        await run_until_idle(wf)

        for fid, amount in amounts.items():
            runs = await wf.list_runs(fid)
            assert len(runs) == 1, fid
            run = await wf.lookup(runs[0].run_id)
            assert run.run_state is RunState.COMPLETED
            if amount <= 1_000:
                assert run.status is Payout.SETTLED
                assert run.object.reference in (f"stl-{fid}", f"stl-{fid}-again")
            else:
                assert run.status is Payout.REJECTED
