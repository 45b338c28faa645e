"""Type test: other shapes of user functions that must type-check under ``mypy --strict``.

Lambdas, callable objects, ``functools.partial``, functions generic over any workflow,
the timer helpers, and a ``dict`` object type. ``build()`` is called so that the workflow's
type is checked too; nothing is run (``tests/test_typing.py`` imports the module).
"""

from __future__ import annotations

import enum
import functools
from datetime import UTC, datetime
from typing import Any, TypeVar, assert_type

from conveyor import Builder, Marker, Run, TypedRecord, Workflow, duration_timer, time_timer
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)

S = TypeVar("S", bound=enum.IntEnum)


class Phase(enum.IntEnum):
    UNKNOWN = 0
    NEW = 1
    SENT = 2
    SEEN = 3
    LOST = 4


Message = dict[str, Any]


class Send:
    """A callable object as a step."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def __call__(self, run: Run[Message, Phase]) -> Phase:
        run.object["channel"] = self.channel
        return Phase.SENT


def mark(run: Run[Message, Phase], payload: bytes, *, field: str) -> Phase | Marker:
    """A callback with a keyword bound by ``functools.partial``."""
    run.object[field] = payload.decode()
    return Phase.SEEN


def pause_any(run: Run[Any, S]) -> Marker:
    """A step for any workflow: it only pauses."""
    return run.pause("generic")


def log_any(record: TypedRecord[Any, Any]) -> None:
    """A hook for any workflow."""
    print(record.workflow_name, record.run_id)


def shapes() -> Workflow[Message, Phase]:
    b: Builder[Message, Phase] = Builder("messages", dict, Phase)
    b.add_step(Phase.NEW, Send("mail"), Phase.SENT)
    b.add_step(Phase.SENT, lambda run: run.skip(), Phase.SEEN)
    b.add_step(Phase.SEEN, pause_any, Phase.LOST)
    b.add_callback(Phase.SENT, functools.partial(mark, field="seen_at"), Phase.SEEN)
    b.add_callback(
        Phase.SENT, lambda run, payload: Phase.LOST if payload else run.skip(), Phase.LOST
    )
    b.add_timeout(Phase.SENT, duration_timer(60.0), lambda run, now: Phase.LOST, Phase.LOST)
    deadline = datetime(2030, 1, 1, tzinfo=UTC)
    b.add_timeout(Phase.SENT, time_timer(deadline), lambda run, now: run.cancel(), Phase.LOST)
    b.on_complete(log_any)
    b.on_cancel(lambda record: None)
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        custom_delete=lambda message: None,
    )
    assert_type(wf.status_type, type[Phase])
    assert_type(wf.object_type, type[Message])
    return wf
