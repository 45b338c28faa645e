"""Pruning: consumed events, dead cursors, finished timeouts, stale roles and members.

One process of an installation prunes at a time (a session advisory lock); every
statement deletes a bounded chunk in its own transaction, so pruning never holds long
locks. What counts as consumed, dead or finished is set by the ``*_retention`` options:
events every cursor of their topic passed, after ``event_retention``; events of a topic
without any cursor, after ``unread_event_retention`` (by default ``event_retention`` too,
so a run-state-change topic nobody reads does not keep an event per finished run for
long).

Where the server runs without autovacuum, the pruner also vacuums and analyses conveyor's
tables after pruning: the outbox and the counters are rewritten thousands of times a
second, and without vacuuming their dead rows would pile up for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import asyncpg

from ..._errors import AdapterError
from ..._kit._hash import fnv1a64
from ._database import Connection, Database

__all__ = ["Pruner"]

log = logging.getLogger("conveyor.adapters.postgres")

_CHUNK = 5_000
_SECONDS = "* interval '1 second'"


class Pruner:
    """Deletes what no reader needs any more (``prune()`` once, or ``run()`` forever)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.tables
        key = fnv1a64(f"conveyor-prune:{t.schema}:{t.prefix}")
        self._lock_key = key - (1 << 64) if key >= 1 << 63 else key
        passed = f"""
SELECT e.ctid FROM {t.events} e
JOIN (SELECT topic, min(position) AS position FROM {t.cursors} GROUP BY topic) c
    ON c.topic = e.topic
WHERE e.id <= c.position AND e.created_at < now() - $1 {_SECONDS}
LIMIT {_CHUNK}"""
        unread = f"""
SELECT e.ctid FROM {t.events} e
WHERE e.created_at < now() - $1 {_SECONDS}
    AND NOT EXISTS (SELECT 1 FROM {t.cursors} c WHERE c.topic = e.topic)
LIMIT {_CHUNK}"""
        self._statements = {
            # Dead cursors first: they would hold back the events every cursor passed.
            "cursors": (
                f"DELETE FROM {t.cursors} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t.cursors} "
                f"WHERE updated_at < now() - $1 {_SECONDS} LIMIT {_CHUNK}))",
                "cursor_retention",
            ),
            "events": (
                f"DELETE FROM {t.events} WHERE ctid = ANY(ARRAY({passed}))",
                "event_retention",
            ),
            "unread_events": (
                f"DELETE FROM {t.events} WHERE ctid = ANY(ARRAY({unread}))",
                "unread_retention",
            ),
            "timeouts": (
                f"DELETE FROM {t.timeouts} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t.timeouts} "
                f"WHERE completed_at < now() - $1 {_SECONDS} LIMIT {_CHUNK}))",
                "timeout_retention",
            ),
            "members": (
                f"DELETE FROM {t.members} WHERE expires_at < now() - $1 {_SECONDS}",
                "role_ttl",
            ),
            "roles": (
                f"DELETE FROM {t.roles} r WHERE (holder IS NULL OR expires_at < now()) "
                f"AND expires_at < now() - $1 {_SECONDS} AND NOT EXISTS ("
                f"SELECT 1 FROM {t.members} m WHERE r.role = ANY(m.wanted))",
                "cursor_retention",
            ),
        }

    async def prune(self) -> dict[str, int] | None:
        """One pass; returns rows deleted per kind, or ``None`` if another process is pruning.

        Raises ``AdapterError``.
        """

        async def work(conn: Connection) -> dict[str, int] | None:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                return None
            try:
                deleted = {kind: await self._delete(conn, kind) for kind in self._statements}
                if await conn.fetchval("SELECT current_setting('autovacuum') = 'off'"):
                    await self._vacuum(conn)
                return deleted
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)

        return await self._db.run("pruning", work)

    async def _delete(self, conn: Connection, kind: str) -> int:
        sql, option = self._statements[kind]
        age = float(getattr(self._db.options, option))
        if kind == "members":
            age *= 10
        total = 0
        while True:
            status = await conn.execute(sql, age)
            count = int(status.rsplit(" ", 1)[-1])
            total += count
            if count < _CHUNK:
                return total

    async def _vacuum(self, conn: Connection) -> None:
        """``VACUUM (ANALYZE)`` every table (what autovacuum would do)."""
        t = self._db.tables
        for table in (
            "outbox",
            "topics",
            "cursors",
            "roles",
            "members",
            "records",
            "events",
            "timeouts",
        ):
            try:
                await conn.execute(f"VACUUM (ANALYZE) {t.names[table]}")
            except asyncpg.PostgresError as exc:  # not the owner, say: pruning still counts
                log.warning("cannot vacuum %s: %s", t.names[table], exc)

    async def run(self) -> None:
        """Prune every ``prune_interval`` seconds (with jitter) until cancelled."""
        interval = self._db.options.prune_interval
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval * random.uniform(0.5, 1.5))
            with contextlib.suppress(AdapterError):
                try:
                    deleted = await self.prune()
                except AdapterError as exc:
                    log.warning("pruning failed (will retry): %s", exc)
                    raise
                if deleted and any(deleted.values()):
                    log.debug("pruned %s", deleted)
