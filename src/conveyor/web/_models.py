"""The JSON API's documents (pydantic models, so the OpenAPI document describes them)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from .._capabilities import HistoryEntry
from .._operator import Action, BulkOutcome, RunDetail, WorkflowInfo
from .._record import Failure, Record
from ._filters import RunStateName

__all__ = [
    "ActionBody",
    "BulkBody",
    "BulkOut",
    "ErrorOut",
    "FailureOut",
    "HistoryEntryOut",
    "HistoryOut",
    "RunDetailOut",
    "RunOut",
    "RunPageOut",
    "WorkflowOut",
    "WorkflowsOut",
]


class ErrorOut(BaseModel):
    """Why a request failed: ``error`` is a short code, ``detail`` says it in words."""

    error: str
    detail: str


class WorkflowOut(BaseModel):
    name: str
    version: int = Field(description="How many different definitions were registered.")
    hash: str
    registered_at: datetime
    statuses: dict[str, str] = Field(description="Status number (as text) to name.")
    edges: list[tuple[int, int]]
    starting: list[int]
    terminal: list[int]
    steps: list[int]
    callbacks: list[int]
    timeouts: list[int]

    @classmethod
    def of(cls, info: WorkflowInfo) -> WorkflowOut:
        return cls(
            name=info.name,
            version=info.version,
            hash=info.hash,
            registered_at=info.registered_at,
            statuses={str(k): v for k, v in sorted(info.statuses.items())},
            edges=list(info.edges),
            starting=list(info.starting),
            terminal=list(info.terminal),
            steps=sorted(info.steps),
            callbacks=sorted(info.callbacks),
            timeouts=sorted(info.timeouts),
        )


class WorkflowsOut(BaseModel):
    workflows: list[WorkflowOut]


class RunOut(BaseModel):
    run_id: str
    workflow: str
    foreign_id: str
    status: int
    status_name: str
    run_state: str
    reason: str
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: Record, status_name: str) -> RunOut:
        return cls(
            run_id=record.run_id,
            workflow=record.workflow_name,
            foreign_id=record.foreign_id,
            status=record.status,
            status_name=status_name,
            run_state=str(record.run_state),
            reason=record.meta.run_state_reason,
            version=record.meta.version,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class RunPageOut(BaseModel):
    runs: list[RunOut]
    cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class FailureOut(BaseModel):
    version: int
    attempt: int
    process: str
    error_type: str
    message: str
    failed_at: datetime
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, f: Failure) -> FailureOut:
        return cls(
            version=f.version,
            attempt=f.attempt,
            process=f.process,
            error_type=f.error_type,
            message=f.message,
            failed_at=f.failed_at,
            next_attempt_at=f.next_attempt_at,
        )


def object_value(raw: bytes) -> Any:  # Any: a run's object is whatever JSON the user stored
    """The run's object as JSON if it is JSON, else as text."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace")


class RunDetailOut(RunOut):
    object: Any = Field(description="The run's object: its JSON, or text if it is not JSON.")
    failure: FailureOut | None = Field(description="The latest failed attempt at this version.")
    next_attempt_at: datetime | None
    actions: list[Action] = Field(description="What the run's state allows now.")

    @classmethod
    def of_detail(cls, detail: RunDetail, status_name: str) -> RunDetailOut:
        base = RunOut.of(detail.record, status_name)
        failure = detail.failure
        return cls(
            **base.model_dump(),
            object=object_value(detail.record.object),
            failure=None if failure is None else FailureOut.of(failure),
            next_attempt_at=None if failure is None else failure.next_attempt_at,
            actions=list(detail.actions),
        )


class HistoryEntryOut(BaseModel):
    version: int
    status: int
    status_name: str
    run_state: str
    reason: str
    at: datetime
    failures: list[FailureOut]

    @classmethod
    def of(cls, entry: HistoryEntry, status_name: str) -> HistoryEntryOut:
        return cls(
            version=entry.version,
            status=entry.status,
            status_name=status_name,
            run_state=str(entry.run_state),
            reason=entry.reason,
            at=entry.at,
            failures=[FailureOut.of(f) for f in entry.failures],
        )


class HistoryOut(BaseModel):
    run_id: str
    history: list[HistoryEntryOut]


class ActionBody(BaseModel):
    reason: str = Field(default="", max_length=4096, description="Why; kept with the run.")
    version: int | None = Field(
        default=None, description="Act only if the run is still at this version (else 409 changed)."
    )


RunIDText = Annotated[str, Field(min_length=1, max_length=200)]


class RunRef(BaseModel):
    run_id: RunIDText
    version: int | None = None


class Filter(BaseModel):
    workflow: str = ""
    foreign_id: str | None = None
    foreign_id_prefix: str | None = None
    status: list[str] = Field(default_factory=list, description="Numbers or names.")
    run_state: list[RunStateName] = Field(default_factory=list)
    created_after: datetime | None = None
    created_before: datetime | None = None


class BulkBody(BaseModel):
    """Either ``run_ids`` or ``filter`` (with its ``cursor`` to continue)."""

    reason: str = Field(default="", max_length=4096)
    run_ids: list[RunIDText | RunRef] | None = Field(default=None, max_length=1000)
    filter: Filter | None = None
    cursor: str | None = None
    limit: int = Field(default=1000, ge=1, le=1000)


class MovedOut(BaseModel):
    run_id: str
    version: int
    run_state: str


class RefusedOut(BaseModel):
    run_id: str
    reason: str


class BulkOut(BaseModel):
    moved: list[MovedOut]
    changed: list[str] = Field(description="Runs that moved after they were listed (skipped).")
    refused: list[RefusedOut]
    cursor: str | None = Field(description="Send again with this cursor for the next runs.")

    @classmethod
    def of(cls, outcome: BulkOutcome) -> BulkOut:
        return cls(
            moved=[
                MovedOut(run_id=r.run_id, version=r.meta.version, run_state=str(r.run_state))
                for r in outcome.moved
            ],
            changed=outcome.changed,
            refused=[RefusedOut(run_id=i, reason=why) for i, why in outcome.refused],
            cursor=outcome.cursor,
        )
