"""Loading the record an event is about, with the rules every consumer shares."""

from __future__ import annotations

from collections.abc import Callable

from .._errors import DecodeError, RecordNotFound, WorkflowError
from .._event import Event, Header
from .._protocols import RecordStore
from .._record import Record

__all__ = [
    "STALE_REASON",
    "Ignore",
    "Quarantine",
    "StaleRecord",
    "Undecodable",
    "event_version",
    "load_current",
    "load_record",
]


STALE_REASON = "event record version lower than latest record version"
"""The skipped-events reason for an event about an older version of its run (the original's)."""


def event_version(event: Event) -> int:
    """The record version an engine event announces (0 if it has none)."""
    raw = event.headers.get(Header.RECORD_VERSION, "")
    return int(raw) if raw.isdigit() else 0


class Ignore(Exception):
    """Acknowledge the event without acting; ``reason`` labels the skipped-events metric."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Undecodable(Ignore):
    """The store cannot decode the run's record: ``error.record`` is its stand-in (when the
    store has one), which a consumer may pause with a compare-and-set on its version."""

    def __init__(self, error: DecodeError) -> None:
        super().__init__("undecodable record")
        self.error = error


class Quarantine(Ignore):
    """The run's record cannot be what its workflow expects (a status its enum lacks): a
    consumer pauses it with ``reason`` (a compare-and-set on its version)."""

    def __init__(self, record: Record, reason: str) -> None:
        super().__init__("record quarantined")
        self.record = record
        self.problem = reason


class StaleRecord(WorkflowError):
    """The store returned an older version than the event announced (replica lag): retry."""


async def load_record(store: RecordStore, event: Event) -> Record:
    """The run the event is about (its ``foreign_id`` is the run ID); ``Ignore`` if gone."""
    if not event.headers:
        raise Ignore("undecodable event headers")
    try:
        return await store.lookup(event.foreign_id)
    except RecordNotFound:
        raise Ignore("record not found") from None
    except DecodeError as exc:
        raise Undecodable(exc) from exc


async def load_current(
    store: RecordStore, event: Event, status: int, known: Callable[[int], bool] | None = None
) -> Record:
    """The run, if the event is about its current version at ``status`` and it is not stopped.

    The version rule (luno-behaviour.md §1.6): a newer record means the event is stale
    (``Ignore``); an older one means the store lags the stream (``StaleRecord``: retry).
    """
    record = await load_record(store, event)
    announced = event_version(event)
    if record.meta.version > announced:
        raise Ignore(STALE_REASON)
    if record.meta.version < announced:
        raise StaleRecord(
            "stale record lookup: record version is lower than event record version "
            f"(run_id={record.run_id}, record={record.meta.version}, event={announced})"
        )
    if record.run_state.stopped():
        raise Ignore("record stopped")
    if record.status != status:
        if known is not None and not known(record.status):
            raise Quarantine(
                record, f"quarantined: status {record.status} is not one of the workflow's"
            )
        raise Ignore("record status not in expected state")
    return record
