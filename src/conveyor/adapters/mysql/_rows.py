"""How the record store's values go to MySQL and come back: times, names, rows.

Names and IDs are ``VARBINARY`` columns (their UTF-8 bytes, see migration 1): they are
sent as ``str`` (the session's utf8mb4 gives their UTF-8 bytes) and come back as
``bytes``, decoded here. A value that is not UTF-8 (written by hand) is left as bytes,
which ``decode_record`` reports as a stand-in instead of raising.

Times are ``DATETIME(6)`` in UTC. The driver formats a ``datetime`` without its zone, so
every time sent is first made a naive UTC one (``to_db``); a naive time given by a caller
is taken as UTC, as everywhere in conveyor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from ..._capabilities import Failure
from .._rows import DecodedRow, decode_record, failure_of

__all__ = [
    "COLUMNS",
    "FAILURE_COLUMNS",
    "failure",
    "from_db",
    "name",
    "reached_text",
    "record",
    "to_db",
]

COLUMNS: Final = (
    "workflow_name",
    "foreign_id",
    "run_id",
    "run_state",
    "status",
    "object",
    "created_at",
    "updated_at",
    "version",
    "run_state_reason",
    "status_description",
    "trace_origin",
    "reached",
)
"""The ``records`` columns every read selects, in this order."""

FAILURE_COLUMNS: Final = (
    "workflow_name",
    "run_id",
    "version",
    "attempt",
    "process",
    "error_type",
    "message",
    "failed_at",
    "next_attempt_at",
)
"""The ``failures`` columns, in the order reads select and writes insert them."""

_NAMES: Final = frozenset({"workflow_name", "foreign_id", "run_id", "process"})


def to_db(moment: datetime) -> datetime:
    """``moment`` as the naive UTC time a ``DATETIME(6)`` column holds."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def from_db(raw: object) -> datetime:
    """A ``DATETIME(6)`` value as an aware UTC time (``TypeError`` for anything else)."""
    if not isinstance(raw, datetime):
        raise TypeError(raw)
    return raw.replace(tzinfo=UTC)


def name(raw: object) -> object:
    """A ``VARBINARY`` name or ID as ``str`` (left as it is when it is not UTF-8)."""
    if isinstance(raw, bytes | bytearray):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(raw)
    return raw


def reached_text(statuses: Sequence[int]) -> str:
    """The ``reached`` column's text: the statuses, comma-separated."""
    return ",".join(str(int(s)) for s in statuses)


def _reached(raw: object) -> tuple[int, ...]:
    if type(raw) is not str:
        raise TypeError(raw)
    return tuple(int(s) for s in raw.split(",")) if raw else ()


def _row(columns: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    return {
        column: name(value) if column in _NAMES else value
        for column, value in zip(columns, values, strict=True)
    }


def record(values: Sequence[Any]) -> DecodedRow:
    """A row of ``COLUMNS`` as a ``Record``, or as a stand-in if it does not decode (a
    run state outside ``RunState``, a name that is not UTF-8): never raises."""
    return decode_record(_row(COLUMNS, values), timestamp=from_db, statuses=_reached)


def failure(values: Sequence[Any], columns: Sequence[str] = FAILURE_COLUMNS) -> Failure:
    """A row of ``FAILURE_COLUMNS`` (or of ``columns``) as a ``Failure``."""
    return failure_of(_row(columns, values), from_db)
