"""The record store's statements, built from one table of columns, and the rows they return.

``RECORD`` lists the ``records`` table's columns once: name, PostgreSQL type, how a
write's value is read, and whether a compare-and-set update writes it. ``OUTBOX`` and
``EVENT`` do the same for what a write adds beside its record (an outbox row, or with
direct events an event in the log). Every statement, its ``$n`` parameters and its
arguments are derived from these tables, so a column is added in one place.

Writes come in four shapes, each for the outbox path and the direct-event path: one new
run (``single(new=True)``), one compare-and-set update (``single(new=False)``) and a
batch of any of them as one statement over ``unnest``-ed arrays (``batch``). Each adds
the outbox rows (or events) of the writes that applied and may NOTIFY; each returns per
write ``ord``, ``applied`` and (only if not applied) ``stored_version``; direct
statements also return ``event_id`` and ``event_created_at``.

With ``history``, each statement also inserts the history row of every write that
applied (``HISTORY``: its version, status, run state, reason and time, no object), and
with ``failures`` it empties the failure messages of every run it moved to DataDeleted:
both are data-modifying CTEs of the same statement, so they cost no round trip and commit
or roll back with the record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from ..._errors import VersionConflict, WorkflowError, WorkflowInProgress
from ..._protocols import RecordWrite
from ..._runstate import RunState
from .._rows import DecodedRow, decode_record

__all__ = [
    "COLUMNS",
    "Statement",
    "batch",
    "decode_headers",
    "encode_headers",
    "entangled",
    "outcome",
    "record",
    "single",
]

encode_headers = msgspec.json.Encoder().encode
decode_headers = msgspec.json.Decoder(dict[str, str]).decode

Get = Callable[[RecordWrite], object]


@dataclass(frozen=True, slots=True)
class Column:
    """One value a write stores: its column name, PostgreSQL type and how it is read."""

    name: str
    type: str
    get: Get
    cas: bool = False
    """Written by a compare-and-set update (else set only when the run is inserted)."""


RECORD = (
    Column("workflow_name", "text", lambda w: w.record.workflow_name),
    Column("foreign_id", "text", lambda w: w.record.foreign_id),
    Column("run_id", "text", lambda w: w.record.run_id),
    Column("run_state", "smallint", lambda w: int(w.record.run_state), cas=True),
    Column("status", "bigint", lambda w: int(w.record.status), cas=True),
    Column("object", "bytea", lambda w: w.record.object, cas=True),
    Column("created_at", "timestamptz", lambda w: w.record.created_at),
    Column("updated_at", "timestamptz", lambda w: w.record.updated_at, cas=True),
    Column("version", "bigint", lambda w: w.record.meta.version, cas=True),
    Column("run_state_reason", "text", lambda w: w.record.meta.run_state_reason, cas=True),
    Column("status_description", "text", lambda w: w.record.meta.status_description, cas=True),
    Column("trace_origin", "text", lambda w: w.record.meta.trace_origin, cas=True),
    Column("reached", "bigint[]", lambda w: [int(s) for s in w.record.meta.reached], cas=True),
)
"""The ``records`` columns, in the order ``COLUMNS`` selects them."""

OUTBOX = (
    Column("id", "text", lambda w: w.outbox.id),
    Column("type", "bigint", lambda w: int(w.outbox.type)),
    Column("headers", "bytea", lambda w: encode_headers(dict(w.outbox.headers))),
    Column("created_at", "timestamptz", lambda w: w.outbox.created_at),
)
"""An outbox row's own columns (its ``workflow_name`` and ``run_id`` are the record's)."""

EVENT = (
    Column("topic", "text", lambda w: w.outbox.topic),
    Column("type", "bigint", lambda w: int(w.outbox.type)),
    Column("headers", "bytea", lambda w: encode_headers(dict(w.outbox.headers))),
)
"""A direct event's columns (its ID comes from the topic's counter, its foreign ID is the
run ID)."""

HISTORY = (
    ("run_id", "run_id"),
    ("version", "version"),
    ("status", "status"),
    ("run_state", "run_state"),
    ("reason", "run_state_reason"),
    ("at", "updated_at"),
)
"""The ``history`` columns, each with the ``records`` column whose written value it takes."""

_DATA_DELETED = int(RunState.DATA_DELETED)
_APPLIED_W = "w JOIN applied USING (ord)"

COLUMNS = ", ".join(c.name for c in RECORD)
_BY_NAME = {c.name: c for c in RECORD}
_UPDATED = [c for c in RECORD if c.cas]


def record(row: asyncpg.Record) -> DecodedRow:
    """A row of ``COLUMNS`` as a ``Record``, or as a stand-in if it does not decode (a
    run state outside ``RunState``, a NULL in ``reached``): never raises."""
    return decode_record(row, timestamp=_timestamp, statuses=_statuses)


def _timestamp(raw: object) -> datetime:
    if not isinstance(raw, datetime):
        raise TypeError(raw)
    return raw


def _statuses(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, list | tuple) or any(type(s) is not int for s in raw):
        raise TypeError(raw)
    return tuple(raw)


@dataclass(frozen=True, slots=True)
class Statement:
    """A write statement and how to build its arguments: the write's values (or, for a
    batch, one array per column), then ``extra`` (what the caller passes after them)."""

    sql: str
    gets: tuple[Get, ...]
    is_batch: bool

    def args(self, writes: Sequence[RecordWrite]) -> list[object]:
        """The arguments for ``writes`` (exactly one unless ``is_batch``)."""
        if not self.is_batch:
            (write,) = writes
            return [get(write) for get in self.gets]
        return [list(range(len(writes))), *([get(w) for w in writes] for get in self.gets)]


class _Params:
    """Hands out ``$n`` placeholders in order, remembering what fills each."""

    def __init__(self, first: int = 1) -> None:
        self.gets: list[Get] = []
        self._first = first

    def add(self, get: Get) -> str:
        self.gets.append(get)
        return f"${self._first + len(self.gets) - 1}"

    def next(self) -> str:
        """The placeholder after the last one handed out (for the caller's extras)."""
        return f"${self._first + len(self.gets)}"


def _reached_text(w: RecordWrite) -> str:
    # Arrays of arrays cannot be unnested when their lengths differ: send text, cast back.
    return "{" + ",".join(str(int(s)) for s in w.record.meta.reached) + "}"


def _batch_value(column: Column) -> tuple[str, Get]:
    """How a batch passes ``column``: its array element type, and the value."""
    if column.type.endswith("[]"):
        return "text", _reached_text
    return column.type, column.get


def _batch_select(name: str, column: Column) -> str:
    return f"{name}::{column.type}" if column.type.endswith("[]") else name


def _records_ctes(records: str) -> str:
    """The CTEs both batch statements share: from the unnested writes ``w``, insert the new
    runs, compare-and-set the others, and list the ``ord`` of every write that applied."""
    names = ", ".join(c.name for c in RECORD)
    selected = ", ".join(_batch_select(c.name, c) for c in RECORD)
    updates = ", ".join(f"{c.name} = {_batch_select('w.' + c.name, c)}" for c in _UPDATED)
    return f"""inserted AS (
    INSERT INTO {records} ({names})
    SELECT {selected}
    FROM w WHERE expected = 0 ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING run_id
),
updated AS (
    UPDATE {records} r SET {updates}
    FROM w
    WHERE w.expected > 0 AND r.run_id = w.run_id AND r.version = w.expected
    RETURNING w.ord
),
applied AS (
    SELECT w.ord FROM w JOIN inserted USING (run_id) WHERE w.expected = 0
    UNION ALL SELECT ord FROM updated
),
"""


def _history_sql(history: str, values: Sequence[str], source: str) -> str:
    """The CTE inserting the history rows of ``values`` (one per ``HISTORY`` column) from
    ``source`` (the applied writes)."""
    names = ", ".join(name for name, _ in HISTORY)
    sets = ", ".join(f"{name} = excluded.{name}" for name, _ in HISTORY[2:])
    return f"""historied AS (
    INSERT INTO {history} ({names})
    SELECT {", ".join(values)} FROM {source}
    ON CONFLICT (run_id, version) DO UPDATE SET {sets}
),
"""


def _batch_extras(history: str, failures: str) -> str:
    """The CTEs a batch adds after ``applied``: history rows, and scrubbed failures."""
    sql = ""
    if history:
        sql += _history_sql(history, [f"w.{column}" for _, column in HISTORY], _APPLIED_W)
    if failures:
        sql += f"""scrubbed AS (
    UPDATE {failures} f SET message = ''
    FROM {_APPLIED_W}
    WHERE w.run_state = {_DATA_DELETED} AND f.run_id = w.run_id AND f.message <> ''
),
"""
    return sql


def _single_extras(history: str, failures: str, placeholders: dict[str, str]) -> str:
    """The CTEs a single write adds after ``written`` (see ``_batch_extras``)."""
    run_id, run_state = placeholders["run_id"], placeholders["run_state"]
    sql = ""
    if history:
        values = [f"{placeholders[column]}::{_BY_NAME[column].type}" for _, column in HISTORY]
        sql += _history_sql(history, values, "written")
    if failures:
        sql += f"""scrubbed AS (
    UPDATE {failures} SET message = ''
    WHERE run_id = {run_id} AND {run_state}::smallint = {_DATA_DELETED} AND message <> ''
        AND EXISTS (SELECT 1 FROM written)
),
"""
    return sql


def _unnest(extra: Sequence[tuple[str, Column]]) -> tuple[str, _Params]:
    """``w``: the writes of a batch as rows, from one array per column (``$1`` is ``ord``,
    ``$2`` the expected version, then the records' columns, then ``extra``)."""
    params = _Params(first=2)
    arrays = ["$1::int[]", f"{params.add(lambda w: w.expected_version)}::bigint[]"]
    names = ["ord", "expected"]
    for name, column in [*((c.name, c) for c in RECORD), *extra]:
        kind, get = _batch_value(column)
        arrays.append(f"{params.add(get)}::{kind}[]")
        names.append(name)
    sql = f"""w AS (
    SELECT * FROM unnest({", ".join(arrays)})
        AS w({", ".join(names)})
)"""
    return sql, params


def batch(
    records: str,
    channel: str,
    others: str,
    *,
    outbox: str = "",
    topics: str = "",
    events: str = "",
    history: str = "",
    failures: str = "",
) -> Statement:
    """A batch of writes as one statement; with ``outbox``, each applied write adds its
    outbox row (extras: the workflows to NOTIFY, the member ID); with ``topics`` and
    ``events``, it appends its event to the log (extra: the member ID). With ``history``
    and ``failures``, see the module docstring.

    Direct events take their IDs from the topics' counter rows as any send does (gap
    free, visible in order); counters are taken after the records, in topic order, so two
    writers never wait for each other in a cycle. Each appended topic is NOTIFYed if
    another process listens.
    """
    extras = _batch_extras(history, failures)
    if outbox:
        w, params = _unnest([(f"outbox_{c.name}", c) for c in OUTBOX])
        notify, member = params.next(), f"${len(params.gets) + 3}"
        outbox_names = ", ".join(c.name for c in OUTBOX)
        outbox_values = ", ".join(f"w.outbox_{c.name}" for c in OUTBOX)
        sql = f"""
WITH {w},
{_records_ctes(records)}{extras}relayed AS (
    INSERT INTO {outbox} (workflow_name, run_id, {outbox_names})
    SELECT w.workflow_name, w.run_id, {outbox_values}
    FROM w JOIN applied USING (ord) ORDER BY w.ord
)
SELECT w.ord, a.ord IS NOT NULL AS applied,
    -- the version a write that did not apply found (read only for those)
    CASE WHEN a.ord IS NULL THEN (SELECT r.version FROM {records} r WHERE r.run_id = w.run_id)
    END AS stored_version,
    (SELECT count(pg_notify({channel!r}, 'o:' || n.workflow_name))
     FROM (SELECT DISTINCT w2.workflow_name FROM w w2 JOIN applied USING (ord)) n
     WHERE n.workflow_name = ANY({notify}::text[]) AND {others.replace("$_", member)})
    AS notified
FROM w LEFT JOIN applied a USING (ord)
"""
        return Statement(sql, tuple(params.gets), is_batch=True)
    w, params = _unnest([(f"event_{c.name}", c) for c in EVENT])
    member = params.next()
    sql = f"""
WITH {w},
{_records_ctes(records)}{extras}counts AS (
    SELECT w.event_topic AS topic, count(*) AS n FROM w JOIN applied USING (ord)
    GROUP BY w.event_topic
),
counter AS (
    INSERT INTO {topics} AS t (topic, last_id)
    SELECT topic, n FROM counts ORDER BY topic
    ON CONFLICT (topic) DO UPDATE SET last_id = t.last_id + excluded.last_id
    RETURNING t.topic, t.last_id
),
numbered AS (
    SELECT w.ord, w.event_topic AS topic, w.run_id, w.event_type, w.event_headers,
        c.last_id - k.n
            + row_number() OVER (PARTITION BY w.event_topic ORDER BY w.ord) AS id
    FROM w JOIN applied USING (ord)
        JOIN counter c ON c.topic = w.event_topic JOIN counts k ON k.topic = w.event_topic
),
appended AS (
    INSERT INTO {events} (topic, id, foreign_id, type, headers)
    SELECT topic, id, run_id, event_type, event_headers FROM numbered
)
SELECT w.ord, a.ord IS NOT NULL AS applied,
    CASE WHEN a.ord IS NULL THEN (SELECT r.version FROM {records} r WHERE r.run_id = w.run_id)
    END AS stored_version,
    n.id AS event_id, now() AS event_created_at,
    (SELECT count(pg_notify({channel!r}, 'e:' || c.topic)) FROM counter c
     WHERE {others.replace("$_", member)}) AS notified
FROM w LEFT JOIN applied a USING (ord) LEFT JOIN numbered n USING (ord)
"""
    return Statement(sql, tuple(params.gets), is_batch=True)


def _single_write(records: str, params: _Params, *, new: bool) -> tuple[str, dict[str, str]]:
    """The insert (``new``) or compare-and-set update of one write, with plain parameters;
    returns the SQL (``RETURNING run_id``) and the placeholders of the record's columns."""
    placeholders = {c.name: params.add(c.get) for c in (RECORD if new else _UPDATED)}
    if new:
        sql = f"""
    INSERT INTO {records} ({", ".join(placeholders)})
    VALUES ({", ".join(placeholders.values())})
    ON CONFLICT DO NOTHING
    RETURNING run_id"""
        return sql, placeholders
    sets = ", ".join(f"{name} = {p}" for name, p in placeholders.items())
    placeholders["run_id"] = params.add(_BY_NAME["run_id"].get)
    expected = params.add(lambda w: w.expected_version)
    sql = f"""
    UPDATE {records} SET {sets}
    WHERE run_id = {placeholders["run_id"]} AND version = {expected}
    RETURNING run_id"""
    return sql, placeholders


def single(
    records: str,
    channel: str,
    others: str,
    *,
    new: bool,
    outbox: str = "",
    topics: str = "",
    events: str = "",
    history: str = "",
    failures: str = "",
) -> Statement:
    """One write (a trigger, or a step alone in its batch): plain parameters, no arrays to
    unnest. ``new``: an insert, else a compare-and-set update. With ``outbox`` the extras
    are whether to NOTIFY and the member ID; with ``topics`` and ``events``, the member ID.
    With ``history`` and ``failures``, see the module docstring.
    """
    params = _Params()
    write, placeholders = _single_write(records, params, new=new)
    extras = _single_extras(history, failures, placeholders)
    run_id = placeholders["run_id"]
    stored = (
        "CASE WHEN NOT EXISTS (SELECT 1 FROM written) "
        f"THEN (SELECT version FROM {records} WHERE run_id = {run_id}) END AS stored_version"
    )
    if outbox:
        workflow = placeholders.get("workflow_name") or params.add(_BY_NAME["workflow_name"].get)
        values = {c.name: params.add(c.get) for c in OUTBOX}
        notify = params.next()
        member = f"${len(params.gets) + 2}"
        sql = f"""
WITH written AS ({write}
),
{extras}relayed AS (
    INSERT INTO {outbox} (workflow_name, run_id, {", ".join(values)})
    SELECT {workflow}, {run_id}, {", ".join(values.values())} FROM written
)
SELECT 0 AS ord, EXISTS (SELECT 1 FROM written) AS applied, {stored},
    (SELECT count(pg_notify({channel!r}, 'o:' || {workflow})) FROM written
     WHERE {notify} AND {others.replace("$_", member)}) AS notified
"""
        return Statement(sql, tuple(params.gets), is_batch=False)
    topic, event_type, headers = (params.add(c.get) for c in EVENT)
    member = params.next()
    sql = f"""
WITH written AS ({write}
),
{extras}counter AS (
    INSERT INTO {topics} AS t (topic, last_id) SELECT {topic}, 1 FROM written
    ON CONFLICT (topic) DO UPDATE SET last_id = t.last_id + 1
    RETURNING t.last_id
),
appended AS (
    INSERT INTO {events} (topic, id, foreign_id, type, headers)
    SELECT {topic}, last_id, {run_id}, {event_type}, {headers} FROM counter
)
SELECT 0 AS ord, EXISTS (SELECT 1 FROM written) AS applied, {stored},
    (SELECT last_id FROM counter) AS event_id, now() AS event_created_at,
    (SELECT count(pg_notify({channel!r}, 'e:' || {topic})) FROM counter
     WHERE {others.replace("$_", member)}) AS notified
"""
    return Statement(sql, tuple(params.gets), is_batch=False)


def entangled(writes: Sequence[RecordWrite]) -> bool:
    """Whether one statement could see the writes in another order than the batch's: two
    writes of one run, or a new run next to another write of its foreign ID."""
    if len(writes) == 1:
        return False
    run_ids = {w.record.run_id for w in writes}
    if len(run_ids) < len(writes):
        return True
    keys = Counter((w.record.workflow_name, w.record.foreign_id) for w in writes)
    return any(
        keys[(w.record.workflow_name, w.record.foreign_id)] > 1
        for w in writes
        if w.expected_version == 0
    )


def outcome(write: RecordWrite, row: asyncpg.Record | None) -> WorkflowError | None:
    """What a write statement's row says of ``write``: ``None`` if it applied. No row: the
    write hit a unique index in its savepoint (another active run of its foreign ID)."""
    record = write.record
    if row is None:
        return WorkflowInProgress(record.workflow_name, record.foreign_id)
    if row["applied"]:
        return None
    stored_version = row["stored_version"]
    if write.expected_version == 0 and stored_version is None:
        return WorkflowInProgress(record.workflow_name, record.foreign_id)
    return VersionConflict(record.run_id, write.expected_version, stored_version)
