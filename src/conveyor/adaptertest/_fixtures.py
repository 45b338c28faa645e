"""Shared helpers of the conformance suites: dummy records, outbox events, bounded waits."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import uuid
from collections.abc import Awaitable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from .._event import Event, Header, OutboxEvent, topic_for
from .._protocols import RecordWrite
from .._record import Meta, Record
from .._runstate import RunState

__all__ = [
    "ALLOWED_TIME_DEVIATION",
    "FOREIGN_ID",
    "SECOND_WORKFLOW",
    "WAIT_TIMEOUT",
    "WORKFLOW",
    "Status",
    "User",
    "assert_record_equal",
    "dummy_record",
    "foreign_ids",
    "insert",
    "new_name",
    "outbox_event",
    "update",
    "within",
]

T = TypeVar("T")

ALLOWED_TIME_DEVIATION = timedelta(seconds=10)
"""How far a timestamp stamped by the backend (an event's ``created_at``) may be from now."""

WAIT_TIMEOUT = 5.0
"""Default bound, in seconds, on anything a case waits for (an event, a role, a wake-up)."""

WORKFLOW = "my_workflow"
SECOND_WORKFLOW = "my_second_workflow"
FOREIGN_ID = "Andrew Wormald"


class Status(enum.IntEnum):
    """The statuses of the suites' dummy workflow (luno's shared test enum)."""

    STARTED = 1
    MIDDLE = 2
    END = 3


@dataclasses.dataclass
class User:
    """The object of the suites' whole-workflow cases (luno's ``User``)."""

    uid: str = ""
    email: str = ""
    country_code: str = ""


def new_name(prefix: str) -> str:
    """A unique topic, receiver or role name, so backends shared between cases do not mix."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def dummy_record(
    workflow_name: str = WORKFLOW,
    *,
    foreign_id: str = FOREIGN_ID,
    run_id: str | None = None,
    status: int = Status.STARTED,
    run_state: RunState = RunState.INITIATED,
    created_at: datetime | None = None,
) -> Record:
    """A first version (``version == 1``) of a new run, created now unless told otherwise."""
    now = created_at or datetime.now(UTC)
    return Record(
        workflow_name=workflow_name,
        foreign_id=foreign_id,
        run_id=run_id or str(uuid.uuid4()),
        run_state=run_state,
        status=int(status),
        object=json.dumps({"name": foreign_id, "count": 0}).encode(),
        created_at=now,
        updated_at=now,
        meta=Meta(
            status_description=_status_name(status),
            version=1,
            trace_origin="conveyor/adaptertest/_fixtures.py:1",
        ),
    )


def _status_name(status: int) -> str:
    try:
        return Status(status).name.title()
    except ValueError:
        return str(status)


def outbox_event(record: Record, **extra_headers: str) -> OutboxEvent:
    """The outbox event the engine writes with ``record`` (plus ``extra_headers``)."""
    headers: dict[str, str] = {
        Header.WORKFLOW_NAME: record.workflow_name,
        Header.FOREIGN_ID: record.foreign_id,
        Header.TOPIC: topic_for(record.workflow_name, record.run_state, record.status),
        Header.RUN_ID: record.run_id,
        Header.RUN_STATE: str(int(record.run_state)),
        Header.RECORD_VERSION: str(record.meta.version),
        Header.EVENT_TIME: record.updated_at.isoformat(),
    }
    headers.update(extra_headers)
    return OutboxEvent(
        id=f"outbox-id-{uuid.uuid4()}",
        workflow_name=record.workflow_name,
        run_id=record.run_id,
        type=record.status,
        headers=headers,
        created_at=record.updated_at,
    )


def insert(record: Record) -> RecordWrite:
    """The write that inserts ``record`` as a new run (``expected_version == 0``)."""
    return RecordWrite(record, outbox_event(record), expected_version=0)


def update(previous: Record, **changes: Any) -> RecordWrite:
    """The write that replaces ``previous``: the version is bumped and compare-and-set on it.

    ``changes`` are record fields (``status``, ``run_state``, ``object``, ...).
    """
    updated_at = changes.pop("updated_at", None) or max(datetime.now(UTC), previous.updated_at)
    meta = dataclasses.replace(
        previous.meta,
        version=previous.meta.version + 1,
        status_description=_status_name(changes.get("status", previous.status)),
    )
    record = previous.replace(updated_at=updated_at, meta=meta, **changes)
    return RecordWrite(record, outbox_event(record), expected_version=previous.meta.version)


def assert_record_equal(got: Record, want: Record) -> None:
    """Every field equal, timestamps included: stores keep the record's own timestamps."""
    assert got.workflow_name == want.workflow_name
    assert got.foreign_id == want.foreign_id
    assert got.run_id == want.run_id
    assert got.run_state == want.run_state
    assert isinstance(got.run_state, RunState), "run_state must come back as a RunState"
    assert got.status == want.status
    assert got.object == want.object
    assert got.created_at == want.created_at, "created_at must be the record's own"
    assert got.updated_at == want.updated_at, "updated_at must be the record's own"
    assert got.meta == want.meta


async def within(awaitable: Awaitable[T], timeout: float, what: str) -> T:
    """Await ``awaitable``, failing the case (not hanging) if it takes over ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def foreign_ids(events: Collection[Event]) -> list[str]:
    """The foreign IDs of ``events``, in order."""
    return [e.foreign_id for e in events]
