"""Statuses, object types and builders shared by the unit tests (memory adapters only)."""

from __future__ import annotations

import asyncio
import contextvars
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor import Builder, Meta, Options, Record, RunState, Workflow
from conveyor.abc import (
    Delivery,
    Event,
    Header,
    OutboxEvent,
    RecordWrite,
    run_state_change_topic,
    topic,
)
from conveyor.adapters.memory import (
    MemoryEventReceiver,
    MemoryEventSender,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)
from conveyor.testing import FakeClock

START = datetime(2024, 1, 1, tzinfo=UTC)
"""Where every test's FakeClock starts."""

FAST = Options(err_backoff=0.001, polling_frequency=0.01)
"""Defaults for tests: retries after a step error happen at once."""

WAIT = 5.0
"""Upper bound (seconds) for anything a test waits on; normally reached in milliseconds."""


class Status(enum.IntEnum):
    """The statuses most tests use: STARTED -> MIDDLE -> DONE (OTHER_END: another ending)."""

    UNKNOWN = 0
    STARTED = 1
    MIDDLE = 2
    DONE = 3
    OTHER_END = 4
    UNUSED = 9
    """In the enum but never part of a graph."""


@dataclass
class Doc:
    """The object most workflows carry."""

    name: str = ""
    items: list[str] = field(default_factory=list)
    attempts: int = 0


@dataclass
class Env:
    """Fresh memory adapters and a fake clock for one test."""

    streamer: MemoryEventStreamer
    store: MemoryRecordStore
    roles: MemoryRoleScheduler
    clock: FakeClock

    def build(self, builder: Builder[Any, Any], **kwargs: Any) -> Workflow[Any, Any]:
        """``builder.build`` on these adapters, with the fake clock and fast retries."""
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("default_options", FAST)
        return builder.build(self.streamer, self.store, self.roles, **kwargs)


def new_env() -> Env:
    clock = FakeClock(START)
    return Env(MemoryEventStreamer(clock=clock), MemoryRecordStore(), MemoryRoleScheduler(), clock)


async def to_middle(run: Any) -> Status:
    return Status.MIDDLE


async def to_done(run: Any) -> Status:
    return Status.DONE


def linear(name: str = "linear") -> Builder[Doc, Status]:
    """STARTED -> MIDDLE -> DONE, two async steps that only move the run on."""
    b = Builder(name, Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    b.add_step(Status.MIDDLE, to_done, Status.DONE)
    return b


async def never_called(run: Any, payload: bytes) -> Status:
    raise AssertionError("this callback is only there to shape the graph")


def parked(name: str = "parked") -> Builder[Doc, Status]:
    """A run waits at STARTED for a callback to move it to DONE (no step ever runs)."""
    b = Builder(name, Doc, Status)
    b.add_callback(Status.STARTED, never_called, Status.DONE)
    return b


async def settle(rounds: int = 200) -> None:
    """Let every ready task of the event loop run for ``rounds`` turns.

    Used only to show that something does *not* happen with in-process adapters, where
    all work is done by tasks on this loop (``run_until_idle`` is used where it applies).
    """
    for _ in range(rounds):
        await asyncio.sleep(0)


async def events_on(streamer: MemoryEventStreamer, topic_name: str) -> list[Event]:
    """Every event a topic holds so far (read by a throwaway receiver)."""
    rx = await streamer.new_receiver(topic_name, f"inspect-{uuid.uuid4()}")
    events: list[Event] = []
    try:
        while rx.pending():
            events.extend(await rx.recv(1000))
    finally:
        await rx.close()
    return events


def forged_write(
    workflow_name: str,
    *,
    foreign_id: str,
    run_id: str,
    status: int,
    obj: bytes,
    run_state: RunState = RunState.INITIATED,
    version: int = 1,
    event_status: int | None = None,
) -> RecordWrite:
    """A record write built by hand, as another program (or an older deployment) might.

    Its outbox event goes where the engine would route it, or to the topic of
    ``event_status`` if given (to put an inconsistent event in front of a consumer).
    """
    record = Record(
        workflow_name=workflow_name,
        foreign_id=foreign_id,
        run_id=run_id,
        run_state=run_state,
        status=status,
        object=obj,
        created_at=START,
        updated_at=START,
        meta=Meta(status_description=str(status), version=version),
    )
    if event_status is not None:
        topic_name = topic(workflow_name, event_status)
    elif run_state in (RunState.INITIATED, RunState.RUNNING):
        topic_name = topic(workflow_name, status)
    else:
        topic_name = run_state_change_topic(workflow_name)
    headers: dict[str, str] = {
        Header.WORKFLOW_NAME: workflow_name,
        Header.FOREIGN_ID: foreign_id,
        Header.TOPIC: topic_name,
        Header.RUN_ID: run_id,
        Header.RUN_STATE: str(int(run_state)),
        Header.RECORD_VERSION: str(version),
    }
    outbox = OutboxEvent(
        id=f"outbox-id-forged-{run_id}",
        workflow_name=workflow_name,
        run_id=run_id,
        type=status if event_status is None else event_status,
        headers=headers,
        created_at=START,
    )
    return RecordWrite(record, outbox, 0)


# --------------------------------------------------------------------------- spying

current_receiver: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_receiver", default=""
)
"""Name of the receiver whose ``recv`` last ran in this task (seen by step code too)."""


class SpyReceiver:
    """Delegates to a memory receiver; tells step code which receiver handed it the run."""

    def __init__(self, inner: MemoryEventReceiver, name: str, log: list[tuple[str, Event]]):
        self._inner = inner
        self._name = name
        self._log = log

    def pending(self) -> int:
        return self._inner.pending()

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        events = await self._inner.recv(max_events)
        current_receiver.set(self._name)
        self._log.extend((self._name, e) for e in events)
        return events

    async def ack(self, event: Event) -> None:
        await self._inner.ack(event)

    async def close(self) -> None:
        await self._inner.close()


class SpyStreamer:
    """A memory streamer whose receivers record what they hand out, and to whom."""

    delivery = Delivery.CURSOR

    def __init__(self, inner: MemoryEventStreamer) -> None:
        self.inner = inner
        self.received: list[tuple[str, Event]] = []

    async def new_sender(self, topic: str) -> MemoryEventSender:
        return await self.inner.new_sender(topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> SpyReceiver:
        rx = await self.inner.new_receiver(
            topic, name, stream_from_latest=stream_from_latest, poll_interval=poll_interval
        )
        return SpyReceiver(rx, name, self.received)

    async def close(self) -> None:
        await self.inner.close()


def adapters() -> tuple[MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler]:
    """Fresh memory adapters, for tests that only build."""
    env = new_env()
    return env.streamer, env.store, env.roles
