"""``DirectWrites``: records whose events go straight into the event log, in one commit.

When the event log lives in the same database (``PostgresRecordStore(db,
events=streamer)``, what ``connect`` builds), a write appends its event to the log in its
own statement instead of adding an outbox row: one commit per write instead of three
statements (write, relay's send, outbox delete), and a run moves from one process to
another in one hop instead of two (write, relay, consumer). The event is exactly the one
the relay would have sent (same topic, type, headers and foreign ID); the outbox stays
empty and no relay runs. This process's receivers are handed the events at once
(``PostgresEventStreamer.appended``).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..._errors import WorkflowError
from ..._event import Event
from ..._protocols import RecordWrite
from ._batch_writes import in_order
from ._database import Connection, Database
from ._record_sql import batch, entangled, outcome, single
from ._savepoints import one_by_one
from ._streamer import PostgresEventStreamer

__all__ = ["DirectWrites"]


class DirectWrites:
    """Stores writes and appends their events to ``streamer``'s log (module docstring)."""

    def __init__(
        self, db: Database, streamer: PostgresEventStreamer, *, history: bool = True
    ) -> None:
        self._db = db
        self.streamer = streamer
        t = db.tables
        others = db.others_listen_sql
        log = {
            "topics": t.topics,
            "events": t.events,
            "failures": t.failures,
            "history": t.history if history else "",
        }
        self._batch = batch(t.records, t.channel, others, **log)
        self._single = {
            new: single(t.records, t.channel, others, new=new, **log) for new in (True, False)
        }

    async def store(self, writes: Sequence[RecordWrite]) -> list[WorkflowError | None]:
        """One outcome per write (``None``: applied, its event appended). Raises
        ``AdapterError``."""
        rows = None if entangled(writes) else await self._together(writes)
        if rows is None:
            me = self._db.member_id
            rows = await one_by_one(self._db, writes, self._single, [(me,)] * len(writes))
        outcomes: list[WorkflowError | None] = []
        by_topic: dict[str, list[Event]] = {}
        for write, row in zip(writes, rows, strict=True):
            result = outcome(write, row)
            outcomes.append(result)
            if result is None and row is not None:
                o = write.outbox
                event = Event(
                    row["event_id"], o.run_id, int(o.type), dict(o.headers), row["event_created_at"]
                )
                by_topic.setdefault(o.topic, []).append(event)
        for topic, events in by_topic.items():
            events.sort(key=lambda e: e.id)
            self.streamer.appended(topic, events)
        return outcomes

    async def _together(self, writes: Sequence[RecordWrite]) -> list[asyncpg.Record | None] | None:
        """The rows of one statement for all ``writes``; ``None`` if it met a unique index."""
        me = self._db.member_id

        async def work(conn: Connection) -> list[asyncpg.Record | None] | None:
            try:
                if len(writes) == 1:
                    stmt = self._single[writes[0].expected_version == 0]
                    return [await conn.fetchrow(stmt.sql, *stmt.args(writes), me)]
                rows = await conn.fetch(self._batch.sql, *self._batch.args(writes), me)
                return in_order(rows, len(writes))
            except asyncpg.UniqueViolationError:
                return None

        return await self._db.run("storing records", work)
