"""Messages moved by event streamers, the outbox, and the naming of topics and roles."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ._frozen import fast_init
from ._runstate import RunState

__all__ = [
    "Event",
    "Header",
    "OutboxEvent",
    "delete_topic",
    "make_role",
    "run_state_change_topic",
    "topic",
]


class Header(enum.StrEnum):
    """Header names written on every engine event (the original's names)."""

    WORKFLOW_NAME = "workflow_name"
    FOREIGN_ID = "foreign_id"
    TOPIC = "topic"
    RUN_ID = "run_id"
    RUN_STATE = "run_state"
    RECORD_VERSION = "record_version"
    CONNECTOR_DATA = "connector_data"
    EVENT_TIME = "event_time"
    """When the engine wrote the event, by the workflow's clock (ISO 8601)."""


@fast_init
@dataclass(frozen=True, slots=True)
class Event:
    """One event as a receiver hands it out.

    ``id`` is assigned by the streamer (non-negative, unique per topic, increasing in
    delivery order: per partition on a partitioned log) and drives sharding;
    ``foreign_id`` carries the run ID for engine events (as in the original).
    """

    id: int
    foreign_id: str
    type: int
    headers: Mapping[str, str]
    created_at: datetime


@fast_init
@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """The event a record store keeps in the same transaction as the record write.

    ``headers`` is an open string map: stores persist every key as given.
    """

    id: str
    workflow_name: str
    run_id: str
    type: int
    headers: Mapping[str, str]
    created_at: datetime

    @property
    def topic(self) -> str:
        """The topic the relay sends this event to."""
        return self.headers[Header.TOPIC]


def _clean(name: str) -> str:
    return name.replace(" ", "_")


def topic(workflow_name: str, status: int) -> str:
    """``<workflow>-<status int>``: where events for runs entering ``status`` go."""
    return f"{_clean(workflow_name)}-{int(status)}"


def run_state_change_topic(workflow_name: str) -> str:
    """``<workflow>-run-state-change``: paused, cancelled, completed, data-deleted writes."""
    return f"{_clean(workflow_name)}-run-state-change"


def delete_topic(workflow_name: str) -> str:
    """``<workflow>-delete``: runs whose data deletion was requested."""
    return f"{_clean(workflow_name)}-delete"


def topic_for(workflow_name: str, run_state: RunState, status: int) -> str:
    """Route a write to its topic by the run state it wrote (luno-behaviour.md §1.3)."""
    if run_state is RunState.INITIATED or run_state is RunState.RUNNING:
        return topic(workflow_name, status)
    if run_state is RunState.REQUESTED_DATA_DELETED:
        return delete_topic(workflow_name)
    return run_state_change_topic(workflow_name)


def make_role(*parts: str | int) -> str:
    """Join parts with ``-``, lower-cased, spaces as ``_`` (role and receiver names)."""
    return "-".join(str(p) for p in parts).lower().replace(" ", "_")
