"""Stored rows that no longer decode: stand-in records and empty headers, never a raise.

One bad row must affect its own run alone (the ``RecordStore`` and ``EventReceiver``
contracts). ``decode_record`` turns a ``records`` row into a ``Record`` without raising:
a row whose columns do not decode becomes a stand-in (identity, status, object and
version as stored, run state ``UNKNOWN``, what is wrong as ``meta.run_state_reason``)
marked bad, and ``DecodedRow.get`` raises ``DecodeError`` for it, once per caller.
``decode_headers`` reads an outbox or event row's headers, ``{}`` when they do not
decode, and logs that once per row (bounded memory). Messages name the column and show
short values only (a number, the start of a string, a blob's length), never an object;
headers only by their size.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from .._capabilities import HistoryEntry
from .._errors import DecodeError
from .._record import Failure, Meta, Record
from .._runstate import RunState

__all__ = ["DecodedRow", "HeaderDecoder", "RowLike", "decode_record"]

_STATES = {int(s): s for s in RunState}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHOWN = 40
"""The most characters of a stored string a message shows."""


class RowLike(Protocol):
    """A database row read by column name (``sqlite3.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class DecodedRow:
    """A ``records`` row as read: its record, or a stand-in and what is wrong (``problem``)."""

    record: Record
    problem: str = ""

    def get(self) -> Record:
        """The record; raises ``DecodeError`` (with the stand-in) if the row is bad."""
        if self.problem:
            raise DecodeError(self.problem, record=self.record)
        return self.record


def _show(raw: object) -> str:
    """A stored value as a message shows it: short, and never a blob's content."""
    if raw is None:
        return "NULL"
    if isinstance(raw, bool):
        return repr(raw)
    if isinstance(raw, int | float):
        return repr(raw)
    if isinstance(raw, str):
        return repr(raw if len(raw) <= _SHOWN else raw[:_SHOWN] + "...")
    if isinstance(raw, bytes | bytearray | memoryview):
        return f"<{len(raw)} bytes>"
    return f"<{type(raw).__name__}>"


class _Columns:
    """Reads one row's columns, collecting what does not decode instead of raising."""

    __slots__ = ("problems", "row")

    def __init__(self, row: RowLike) -> None:
        self.row = row
        self.problems: list[str] = []

    def bad(self, name: str, raw: object, expected: str) -> None:
        self.problems.append(f"{name} {_show(raw)} is not {expected}")

    def text(self, name: str, fallback: str = "") -> str:
        raw = self.row[name]
        if type(raw) is str:
            return raw
        self.bad(name, raw, "text")
        return fallback

    def identity(self, name: str) -> str:
        """A text column that names the run: kept (as text) even when it is not text."""
        raw = self.row[name]
        if type(raw) is str:
            return raw
        self.bad(name, raw, "text")
        if isinstance(raw, bytes):
            return raw.decode("utf-8", "replace")
        return "" if raw is None else str(raw)

    def integer(self, name: str) -> int:
        raw = self.row[name]
        if type(raw) is int:
            return raw
        self.bad(name, raw, "an integer")
        return 0


def decode_record(
    row: RowLike,
    *,
    timestamp: Callable[[object], datetime],
    statuses: Callable[[object], tuple[int, ...]],
) -> DecodedRow:
    """The ``records`` row ``row`` (columns named as ``Record``'s fields and ``Meta``'s) as
    a record, or as a stand-in if a column does not decode. ``timestamp`` and ``statuses``
    read the backend's ``created_at``/``updated_at`` and ``reached`` columns, raising
    ``TypeError``, ``ValueError`` or ``OverflowError`` for a value they cannot read."""
    # The healthy row, checked column by column without collecting anything (this runs
    # for every record read); any doubt goes to ``_examine``, which says what is wrong.
    raw_state = row["run_state"]
    workflow_name, foreign_id, run_id = row["workflow_name"], row["foreign_id"], row["run_id"]
    status, obj, version = row["status"], row["object"], row["version"]
    reason, description, origin = (
        row["run_state_reason"],
        row["status_description"],
        row["trace_origin"],
    )
    if (
        type(raw_state) is int
        and raw_state in _STATES
        and type(workflow_name) is str
        and type(foreign_id) is str
        and type(run_id) is str
        and type(status) is int
        and type(obj) is bytes
        and type(version) is int
        and type(reason) is str
        and type(description) is str
        and type(origin) is str
    ):
        try:
            created_at = timestamp(row["created_at"])
            updated_at = timestamp(row["updated_at"])
            reached = statuses(row["reached"])
        except (TypeError, ValueError, OverflowError):
            pass
        else:
            return DecodedRow(
                Record(
                    workflow_name=workflow_name,
                    foreign_id=foreign_id,
                    run_id=run_id,
                    run_state=_STATES[raw_state],
                    status=status,
                    object=obj,
                    created_at=created_at,
                    updated_at=updated_at,
                    meta=Meta(
                        run_state_reason=reason,
                        status_description=description,
                        version=version,
                        trace_origin=origin,
                        reached=reached,
                    ),
                )
            )
    return _examine(row, timestamp, statuses)


def _examine(
    row: RowLike,
    timestamp: Callable[[object], datetime],
    statuses: Callable[[object], tuple[int, ...]],
) -> DecodedRow:
    """``decode_record`` for a row that may not decode: every column is looked at, and
    what is wrong is collected (a text ``object`` is taken as its UTF-8 bytes)."""
    c = _Columns(row)
    workflow_name = c.identity("workflow_name")
    foreign_id = c.identity("foreign_id")
    run_id = c.identity("run_id")
    raw_state = row["run_state"]
    run_state = _STATES.get(raw_state) if type(raw_state) is int else None
    if run_state is None:
        c.bad("run_state", raw_state, "a RunState")
    status = c.integer("status")
    obj = row["object"]
    if not isinstance(obj, bytes):
        if isinstance(obj, str):
            obj = obj.encode("utf-8", "surrogatepass")  # a text value: the same JSON
        else:
            c.bad("object", obj, "bytes")
            obj = b""
    created_at = _moment(c, "created_at", timestamp)
    updated_at = _moment(c, "updated_at", timestamp)
    version = c.integer("version")
    reason = c.text("run_state_reason")
    status_description = c.text("status_description")
    trace_origin = c.text("trace_origin")
    raw_reached = row["reached"]
    try:
        reached = statuses(raw_reached)
    except (TypeError, ValueError, OverflowError):
        c.bad("reached", raw_reached, "a list of statuses")
        reached = ()
    problem = ""
    if c.problems:
        problem = "undecodable record: " + "; ".join(c.problems)
        reason = problem
    if problem or run_state is None:
        run_state = RunState.UNKNOWN
    return DecodedRow(
        Record(
            workflow_name=workflow_name,
            foreign_id=foreign_id,
            run_id=run_id,
            run_state=run_state,
            status=status,
            object=obj,
            created_at=created_at or updated_at or _EPOCH,
            updated_at=updated_at or created_at or _EPOCH,
            meta=Meta(
                run_state_reason=reason,
                status_description=status_description,
                version=version,
                trace_origin=trace_origin,
                reached=reached,
            ),
        ),
        problem,
    )


def _moment(c: _Columns, name: str, timestamp: Callable[[object], datetime]) -> datetime | None:
    raw = c.row[name]
    try:
        return timestamp(raw)
    except (TypeError, ValueError, OverflowError):
        c.bad(name, raw, "a timestamp")
        return None


_decode = msgspec.json.Decoder(dict[str, str]).decode


def _size(raw: object) -> str:
    """How big stored headers are, without their content (they may hold anything)."""
    if isinstance(raw, str):
        return f"{len(raw)} characters"
    if isinstance(raw, bytes):
        return f"{len(raw)} bytes"
    return "NULL" if raw is None else type(raw).__name__


class HeaderDecoder:
    """Decodes stored headers (a JSON object of strings); ``{}`` for headers that do not
    decode, with one warning per row (the last ``remember`` rows are remembered)."""

    def __init__(self, log: logging.Logger, *, remember: int = 4096) -> None:
        self._log = log
        self._remember = remember
        self._warned: OrderedDict[Hashable, None] = OrderedDict()

    def decode(self, raw: object, key: Hashable, what: str, **fields: object) -> dict[str, str]:
        """The headers in ``raw`` (the row named by ``key`` and, in the warning, by
        ``what``; ``fields`` are its structured fields, such as ``run_id``)."""
        if isinstance(raw, bytes | str):
            try:
                return _decode(raw)
            except (msgspec.DecodeError, ValueError):
                pass
        if key not in self._warned:
            self._warned[key] = None
            if len(self._warned) > self._remember:
                self._warned.popitem(last=False)
            described = " ".join(f"{k}={v!r}" for k, v in fields.items())
            self._log.warning(
                "%s has headers that do not decode (%s, not a JSON object of strings): "
                "handed out with empty headers %s",
                what,
                _size(raw),
                described,
                extra={"conveyor": dict(fields)},
            )
        return {}


def failure_of(
    row: RowLike, timestamp: Callable[[object], datetime], run_id: str | None = None
) -> Failure:
    """A ``failures`` row (or the failure columns of a joined row) as a ``Failure``;
    ``timestamp`` turns a stored time into a ``datetime``."""
    due = row["next_attempt_at"]
    return Failure(
        workflow_name=row["workflow_name"],
        run_id=row["run_id"] if run_id is None else run_id,
        version=row["version"],
        attempt=row["attempt"],
        process=row["process"],
        error_type=row["error_type"],
        message=row["message"],
        failed_at=timestamp(row["failed_at"]),
        next_attempt_at=None if due is None else timestamp(due),
    )


def history_entries(
    rows: Sequence[RowLike], run_id: str, timestamp: Callable[[object], datetime]
) -> list[HistoryEntry]:
    """History rows joined to their failures (ordered by version, then attempt; failure
    columns NULL where a version has none) as entries, each with its version's failures.

    ``timestamp`` turns a stored time into a ``datetime``. A run state outside the enum
    reads as ``UNKNOWN``: a bad history row must not hide the run's history.
    """
    entries: list[HistoryEntry] = []
    failures: list[Failure] = []
    for i, row in enumerate(rows):
        if row["attempt"] is not None:
            failures.append(failure_of(row, timestamp, run_id))
        if i + 1 == len(rows) or rows[i + 1]["version"] != row["version"]:
            entries.append(
                HistoryEntry(
                    version=row["version"],
                    status=row["status"],
                    run_state=_STATES.get(row["run_state"], RunState.UNKNOWN),
                    reason=row["reason"],
                    at=timestamp(row["at"]),
                    failures=tuple(failures),
                )
            )
            failures = []
    return entries
