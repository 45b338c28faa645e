"""Runs started by another system's event stream: a payments service's topic drives payouts.

    REQUESTED --check_limits--> APPROVED --(the stream's "settled" event)--> SETTLED

The port of luno/workflow's ``_examples/connector``. A connector reads an outside stream
(here ``MemoryConnector``, a list; in production ``RedisStreamConnector``, ``NatsConnector``,
or the Kafka and RabbitMQ connectors) and calls ``on_payment_event(workflow, event)`` for
each event, at least once: ``requested`` triggers a run, ``settled`` calls the run back. A
``requested`` sent again (redelivered, or published twice by the other side) finds the run
in progress (``WorkflowInProgress``) and is dropped.
"""

import asyncio
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from conveyor import (
    Builder,
    CallbackRejected,
    ConnectorEvent,
    Run,
    Workflow,
    WorkflowInProgress,
)
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)
from conveyor.testing import run_until_idle


class Payout(enum.IntEnum):
    UNKNOWN = 0
    REQUESTED = 1
    APPROVED = 2
    SETTLED = 3
    REJECTED = 4


@dataclass
class Transfer:
    amount: int = 0
    reference: str = ""


async def check_limits(run: Run[Transfer, Payout]) -> Payout:
    return Payout.APPROVED if run.object.amount <= 1_000 else Payout.REJECTED


def settled(run: Run[Transfer, Payout], payload: bytes) -> Payout:
    run.object.reference = payload.decode()
    return Payout.SETTLED


async def on_payment_event(wf: Workflow[Transfer, Payout], event: ConnectorEvent) -> None:
    if event.type == "requested":
        try:
            await wf.trigger(event.foreign_id, initial=Transfer(int(event.headers["amount"])))
        except WorkflowInProgress:
            pass  # delivered again: the run exists
    elif event.type == "settled":
        try:
            await wf.callback(event.foreign_id, Payout.APPROVED, event.id.encode())
        except CallbackRejected as rejected:
            if rejected.reason == "not_at_status":
                raise  # not approved yet: fail, and the connector delivers it again
            # finished or moved already: a copy of an event that was handled


def builder(stream: MemoryConnector) -> Builder[Transfer, Payout]:
    b = Builder("payouts", Transfer, Payout)
    b.add_step(Payout.REQUESTED, check_limits, Payout.APPROVED, Payout.REJECTED)
    b.add_callback(Payout.APPROVED, settled, Payout.SETTLED)
    b.add_connector("payments", stream, on_payment_event).with_options(parallel_count=2)
    return b


def payment_events(amounts: dict[str, int]) -> Iterable[ConnectorEvent]:
    for n, (fid, amount) in enumerate(amounts.items()):
        yield ConnectorEvent(
            id=f"req-{n}", foreign_id=fid, type="requested", headers={"amount": str(amount)}
        )


async def main() -> None:
    amounts = {"payout-1": 250, "payout-2": 5_000, "payout-3": 900}
    duplicate = ConnectorEvent(
        id="req-0-again", foreign_id="payout-1", type="requested", headers={"amount": "250"}
    )
    stream = MemoryConnector([*payment_events(amounts), duplicate])
    wf = builder(stream).build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    async with wf:
        await run_until_idle(wf)
        stream.add(ConnectorEvent(id="stl-1", foreign_id="payout-1", type="settled"))
        stream.add(ConnectorEvent(id="stl-3", foreign_id="payout-3", type="settled"))
        await run_until_idle(wf)
        for fid in amounts:
            runs = await wf.list_runs(fid)
            latest = await wf.lookup(runs[-1].run_id)
            print(fid, latest.status.name, f"runs={len(runs)}", latest.object)


if __name__ == "__main__":
    asyncio.run(main())
