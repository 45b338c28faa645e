"""The record store's statements, their arguments and the rows they return.

Writes come in three shapes: one new run (``insert_sql``), one compare-and-set update
(``update_sql``), and a batch of any of them as one statement over ``unnest``-ed arrays
(``batch_sql``). Each also inserts the outbox rows of the writes that applied and may
NOTIFY the workflow's channel; each returns, per write, whether it applied and (only if
not) the version it found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from ..._protocols import RecordWrite
from ..._record import Meta, Record
from ..._runstate import RunState

__all__ = [
    "COLUMNS",
    "batch_args",
    "batch_sql",
    "decode_headers",
    "direct_args",
    "direct_one_args",
    "direct_one_sql",
    "direct_sql",
    "encode_headers",
    "entangled",
    "insert_args",
    "insert_sql",
    "record",
    "update_args",
    "update_sql",
]

COLUMNS = (
    "workflow_name, foreign_id, run_id, run_state, status, object, created_at, updated_at, "
    "version, run_state_reason, status_description, trace_origin, reached"
)
encode_headers = msgspec.json.Encoder().encode
decode_headers = msgspec.json.Decoder(dict[str, str]).decode


def record(row: asyncpg.Record) -> Record:
    """A row of ``COLUMNS`` as a ``Record``."""
    return Record(
        workflow_name=row[0],
        foreign_id=row[1],
        run_id=row[2],
        run_state=RunState(row[3]),
        status=row[4],
        object=row[5],
        created_at=row[6],
        updated_at=row[7],
        meta=Meta(
            version=row[8],
            run_state_reason=row[9],
            status_description=row[10],
            trace_origin=row[11],
            reached=tuple(row[12]),
        ),
    )


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column (for ``unnest``)."""
    return [list(col) for col in zip(*rows, strict=True)]


def _record_row(i: int, w: RecordWrite) -> tuple[Any, ...]:
    """The columns every batch statement starts with: a write's position and its record."""
    r, m = w.record, w.record.meta
    return (
        i,
        w.expected_version,
        r.run_id,
        r.workflow_name,
        r.foreign_id,
        int(r.run_state),
        int(r.status),
        r.object,
        r.created_at,
        r.updated_at,
        m.version,
        m.run_state_reason,
        m.status_description,
        m.trace_origin,
    )


def _reached(w: RecordWrite) -> str:
    return "{" + ",".join(str(int(s)) for s in w.record.meta.reached) + "}"


def batch_args(writes: Sequence[RecordWrite]) -> list[list[Any]]:
    """The writes as one array per column (for ``unnest`` in ``batch_sql``)."""
    return _columns(
        [
            (
                *_record_row(i, w),
                w.outbox.id,
                int(w.outbox.type),
                encode_headers(dict(w.outbox.headers)),
                w.outbox.created_at,
                _reached(w),
            )
            for i, w in enumerate(writes)
        ]
    )


def _records_ctes(records: str) -> str:
    """The CTEs both batch statements share: from the unnested writes ``w``, insert the new
    runs, compare-and-set the others, and list the ``ord`` of every write that applied."""
    return f"""inserted AS (
    INSERT INTO {records} (run_id, workflow_name, foreign_id, run_state, status, object,
        created_at, updated_at, version, run_state_reason, status_description, trace_origin,
        reached)
    SELECT run_id, workflow_name, foreign_id, run_state, status, object, created_at,
        updated_at, version, reason, description, trace, reached::bigint[]
    FROM w WHERE expected = 0 ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING run_id
),
updated AS (
    UPDATE {records} r SET run_state = w.run_state, status = w.status, object = w.object,
        updated_at = w.updated_at, version = w.version, run_state_reason = w.reason,
        status_description = w.description, trace_origin = w.trace,
        reached = w.reached::bigint[]
    FROM w
    WHERE w.expected > 0 AND r.run_id = w.run_id AND r.version = w.expected
    RETURNING w.ord
),
applied AS (
    SELECT w.ord FROM w JOIN inserted USING (run_id) WHERE w.expected = 0
    UNION ALL SELECT ord FROM updated
),
"""


def batch_sql(records: str, outbox: str, channel: str, others: str) -> str:
    return f"""
WITH w AS (
    SELECT * FROM unnest(
        $1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::smallint[],
        $7::bigint[], $8::bytea[], $9::timestamptz[], $10::timestamptz[], $11::bigint[],
        $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::bytea[],
        $18::timestamptz[], $19::text[]
    ) AS w(ord, expected, run_id, workflow_name, foreign_id, run_state, status, object,
           created_at, updated_at, version, reason, description, trace, outbox_id,
           outbox_type, outbox_headers, outbox_created_at, reached)
),
{_records_ctes(records)}relayed AS (
    INSERT INTO {outbox} (id, workflow_name, run_id, type, headers, created_at)
    SELECT w.outbox_id, w.workflow_name, w.run_id, w.outbox_type, w.outbox_headers,
        w.outbox_created_at
    FROM w JOIN applied USING (ord) ORDER BY w.ord
)
SELECT w.ord, a.ord IS NOT NULL AS applied,
    -- the version a write that did not apply found (read only for those)
    CASE WHEN a.ord IS NULL THEN (SELECT r.version FROM {records} r WHERE r.run_id = w.run_id)
    END AS stored_version,
    (SELECT count(pg_notify({channel!r}, 'o:' || n.workflow_name))
     FROM (SELECT DISTINCT w2.workflow_name FROM w w2 JOIN applied USING (ord)) n
     WHERE n.workflow_name = ANY($20::text[]) AND {others.replace("$_", "$21")}) AS notified
FROM w LEFT JOIN applied a USING (ord)
"""


def insert_sql(records: str, outbox: str, channel: str, others: str) -> str:
    """One new run (the common case: a trigger): plain parameters, no arrays to unnest."""
    return f"""
WITH inserted AS (
    INSERT INTO {records} (run_id, workflow_name, foreign_id, run_state, status, object,
        created_at, updated_at, version, run_state_reason, status_description, trace_origin,
        reached)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT DO NOTHING
    RETURNING run_id
),
relayed AS (
    INSERT INTO {outbox} (id, workflow_name, run_id, type, headers, created_at)
    SELECT $14, $2, $1, $15, $16, $17 FROM inserted
)
SELECT EXISTS (SELECT 1 FROM inserted),
    CASE WHEN NOT EXISTS (SELECT 1 FROM inserted)
        THEN (SELECT version FROM {records} WHERE run_id = $1) END,
    (SELECT count(pg_notify({channel!r}, 'o:' || $2)) FROM inserted
     WHERE $18 AND {others.replace("$_", "$19")})
"""


def insert_args(write: RecordWrite) -> tuple[object, ...]:
    r, m, o = write.record, write.record.meta, write.outbox
    return (
        r.run_id,
        r.workflow_name,
        r.foreign_id,
        int(r.run_state),
        int(r.status),
        r.object,
        r.created_at,
        r.updated_at,
        m.version,
        m.run_state_reason,
        m.status_description,
        m.trace_origin,
        [int(s) for s in m.reached],
        o.id,
        int(o.type),
        encode_headers(dict(o.headers)),
        o.created_at,
    )


def update_sql(records: str, outbox: str, channel: str, others: str) -> str:
    """One compare-and-set update (a step's write when it is alone in its batch)."""
    return f"""
WITH updated AS (
    UPDATE {records} SET run_state = $3, status = $4, object = $5, updated_at = $6,
        version = $7, run_state_reason = $8, status_description = $9, trace_origin = $10,
        reached = $11
    WHERE run_id = $1 AND version = $16
    RETURNING run_id
),
relayed AS (
    INSERT INTO {outbox} (id, workflow_name, run_id, type, headers, created_at)
    SELECT $12, $2, $1, $13, $14, $15 FROM updated
)
SELECT EXISTS (SELECT 1 FROM updated),
    CASE WHEN NOT EXISTS (SELECT 1 FROM updated)
        THEN (SELECT version FROM {records} WHERE run_id = $1) END,
    (SELECT count(pg_notify({channel!r}, 'o:' || $2)) FROM updated
     WHERE $17 AND {others.replace("$_", "$18")})
"""


def update_args(write: RecordWrite) -> tuple[object, ...]:
    r, m, o = write.record, write.record.meta, write.outbox
    return (
        r.run_id,
        r.workflow_name,
        int(r.run_state),
        int(r.status),
        r.object,
        r.updated_at,
        m.version,
        m.run_state_reason,
        m.status_description,
        m.trace_origin,
        [int(s) for s in m.reached],
        o.id,
        int(o.type),
        encode_headers(dict(o.headers)),
        o.created_at,
        write.expected_version,
    )


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


def direct_args(writes: Sequence[RecordWrite]) -> list[list[Any]]:
    """The writes as one array per column for ``direct_sql`` (the event, not an outbox row)."""
    return _columns(
        [
            (
                *_record_row(i, w),
                w.outbox.topic,
                int(w.outbox.type),
                encode_headers(dict(w.outbox.headers)),
                _reached(w),
            )
            for i, w in enumerate(writes)
        ]
    )


def direct_sql(records: str, topics: str, events: str, channel: str, others: str) -> str:
    """A batch of writes that appends each applied write's event to the event log itself.

    For a record store whose events go to the event log in the same database: the event
    is part of the write's transaction, so no outbox row, relay or second commit. IDs
    come from the topics' counter rows as for any send (gap-free, visible in order);
    counters are taken after the records, in topic order, so two writers never wait for
    each other in a cycle. Returns per write: ``ord, applied, stored_version, event_id,
    now()``, and NOTIFYs each appended topic if another process listens.
    """
    return f"""
WITH w AS (
    SELECT * FROM unnest(
        $1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::smallint[],
        $7::bigint[], $8::bytea[], $9::timestamptz[], $10::timestamptz[], $11::bigint[],
        $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::bytea[],
        $18::text[]
    ) AS w(ord, expected, run_id, workflow_name, foreign_id, run_state, status, object,
           created_at, updated_at, version, reason, description, trace, topic,
           event_type, headers, reached)
),
{_records_ctes(records)}counts AS (
    SELECT w.topic, count(*) AS n FROM w JOIN applied USING (ord) GROUP BY w.topic
),
counter AS (
    INSERT INTO {topics} AS t (topic, last_id)
    SELECT topic, n FROM counts ORDER BY topic
    ON CONFLICT (topic) DO UPDATE SET last_id = t.last_id + excluded.last_id
    RETURNING t.topic, t.last_id
),
numbered AS (
    SELECT w.ord, w.topic, w.run_id, w.event_type, w.headers,
        c.last_id - k.n + row_number() OVER (PARTITION BY w.topic ORDER BY w.ord) AS id
    FROM w JOIN applied USING (ord) JOIN counter c USING (topic) JOIN counts k USING (topic)
),
appended AS (
    INSERT INTO {events} (topic, id, foreign_id, type, headers)
    SELECT topic, id, run_id, event_type, headers FROM numbered
)
SELECT w.ord, a.ord IS NOT NULL AS applied,
    CASE WHEN a.ord IS NULL THEN (SELECT r.version FROM {records} r WHERE r.run_id = w.run_id)
    END AS stored_version,
    n.id, now(),
    (SELECT count(pg_notify({channel!r}, 'e:' || c.topic)) FROM counter c
     WHERE {others.replace("$_", "$19")}) AS notified
FROM w LEFT JOIN applied a USING (ord) LEFT JOIN numbered n USING (ord)
"""


def direct_one_sql(
    records: str, topics: str, events: str, channel: str, others: str, *, new: bool
) -> str:
    """``direct_sql`` for one write (a trigger, or a step alone in its batch): plain
    parameters, no arrays to unnest. ``new``: an insert, else a compare-and-set update
    (arguments from ``direct_one_args``, then the member ID)."""
    if new:
        write = f"""
    INSERT INTO {records} (run_id, workflow_name, foreign_id, run_state, status, object,
        created_at, updated_at, version, run_state_reason, status_description, trace_origin,
        reached)
    VALUES ($1, $14, $15, $2, $3, $4, $16, $5, $6, $7, $8, $9, $10)
    ON CONFLICT DO NOTHING
    RETURNING run_id"""
        member = "$17"
    else:
        write = f"""
    UPDATE {records} SET run_state = $2, status = $3, object = $4, updated_at = $5,
        version = $6, run_state_reason = $7, status_description = $8, trace_origin = $9,
        reached = $10
    WHERE run_id = $1 AND version = $14
    RETURNING run_id"""
        member = "$15"
    return f"""
WITH written AS ({write}
),
counter AS (
    INSERT INTO {topics} AS t (topic, last_id) SELECT $11, 1 FROM written
    ON CONFLICT (topic) DO UPDATE SET last_id = t.last_id + 1
    RETURNING t.last_id
),
appended AS (
    INSERT INTO {events} (topic, id, foreign_id, type, headers)
    SELECT $11, last_id, $1, $12, $13 FROM counter
)
SELECT 0, EXISTS (SELECT 1 FROM written),
    CASE WHEN NOT EXISTS (SELECT 1 FROM written)
        THEN (SELECT version FROM {records} WHERE run_id = $1) END,
    (SELECT last_id FROM counter), now(),
    (SELECT count(pg_notify({channel!r}, 'e:' || $11)) FROM counter
     WHERE {others.replace("$_", member)})
"""


def direct_one_args(write: RecordWrite) -> tuple[object, ...]:
    """The arguments of ``direct_one_sql`` for ``write`` (without the member ID)."""
    r, m, o = write.record, write.record.meta, write.outbox
    common = (
        r.run_id,
        int(r.run_state),
        int(r.status),
        r.object,
        r.updated_at,
        m.version,
        m.run_state_reason,
        m.status_description,
        m.trace_origin,
        [int(s) for s in m.reached],
        o.topic,
        int(o.type),
        encode_headers(dict(o.headers)),
    )
    if write.expected_version == 0:
        return (*common, r.workflow_name, r.foreign_id, r.created_at)
    return (*common, write.expected_version)
