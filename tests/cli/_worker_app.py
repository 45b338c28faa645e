"""The workflow the ``conveyor worker`` tests run (imported by the worker subprocess).

``charge`` is a plain ``def`` step: it writes a line to the journal
(``$CONVEYOR_TEST_JOURNAL``) for every execution, then blocks until the gate file
(``$CONVEYOR_TEST_GATE``) exists, so a test can signal the worker while the step runs.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor import Backend, Builder, Run, Workflow


class Status(enum.IntEnum):
    UNKNOWN = 0
    NEW = 1
    CHARGED = 2
    SHIPPED = 3


@dataclass
class Order:
    charged_by: int = 0


def charge(run: Run[Order, Status]) -> Status:
    with Path(os.environ["CONVEYOR_TEST_JOURNAL"]).open("a") as journal:
        journal.write(f"{run.foreign_id} {os.getpid()}\n")
    gate = Path(os.environ["CONVEYOR_TEST_GATE"])
    while not gate.exists():
        time.sleep(0.01)
    run.object.charged_by = os.getpid()
    return Status.CHARGED


async def ship(run: Run[Order, Status]) -> Status:
    return Status.SHIPPED


builder = Builder("worker-orders", Order, Status)
builder.add_step(Status.NEW, charge, Status.CHARGED)
builder.add_step(Status.CHARGED, ship, Status.SHIPPED)


def factory(backend: Backend) -> Workflow[Order, Status]:
    """The same workflow from a factory (the application owns build()'s options)."""
    return builder.build(
        backend.streamer, backend.record_store, backend.role_scheduler, pause_retry=None
    )


not_a_workflow: Any = 42


def wrong_factory(backend: Backend) -> object:
    return "not a workflow"


def declined(run: Run[Order, Status]) -> Status:
    raise RuntimeError(f"card declined for {run.foreign_id}")


failing = Builder("worker-failing", Order, Status)
failing.add_step(Status.NEW, declined, Status.CHARGED).with_options(err_backoff=60.0)
failing.add_step(Status.CHARGED, ship, Status.SHIPPED)
