"""Runs started by an outside event stream, with metrics on your own registry and a diagram."""

import asyncio
import enum
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest

from conveyor import Builder, ConnectorEvent, Run, Workflow, WorkflowInProgress
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)
from conveyor.diagram import mermaid
from conveyor.testing import run_until_idle


class Signup(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    EMAIL_SENT = 2
    REJECTED = 3


@dataclass
class User:
    uid: str = ""


async def send_email(run: Run[User, Signup]) -> Signup:
    return Signup.REJECTED if run.object.uid.endswith("9") else Signup.EMAIL_SENT


async def on_signup_event(wf: Workflow[User, Signup], event: ConnectorEvent) -> None:
    try:
        await wf.trigger(event.foreign_id, initial=User(uid=event.foreign_id))
    except WorkflowInProgress:
        pass  # a redelivered event: the run already exists


signups = MemoryConnector(ConnectorEvent(id=f"evt-{i}", foreign_id=f"user-{i}") for i in range(10))

b = Builder("signup", User, Signup)
b.add_step(Signup.STARTED, send_email, Signup.EMAIL_SENT, Signup.REJECTED)
b.add_connector("signups", signups, on_signup_event).with_options(parallel_count=3)


async def main() -> None:
    registry = CollectorRegistry()
    wf = b.build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), metrics_registry=registry
    )
    async with wf:
        await run_until_idle(wf)
    print(mermaid(wf))
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("workflow_run_state_changes_total"):
            print(line)


if __name__ == "__main__":
    asyncio.run(main())
