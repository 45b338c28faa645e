"""Reading a topic in this process: what receivers and tails share (``TopicReader``), and
the tail (``MySQLTail``, the ``TailsTopics`` capability).

A reader takes what its ``TopicLog`` holds past its position (no query), reads the table
only when the log's ``last`` is past its position, and otherwise waits for the topic's
signal: this process's sends fire it directly, the ``TopicHub``'s poll when it finds
another process's events (see ``MySQLEventStreamer`` for why reading ``id > position``
never skips an event).

After a server restart (seen by the ``Database``, see there) a reader's position may be
past events the crash undid, whose IDs the server gives to new events: every open reader
is marked (``_restarted``) and, before it looks again, goes back to a position the server
kept (``_resync``): a receiver to its stored cursor, a tail to the topic's last ID now,
with a gap. A read that was under way when the restart was seen is dropped.
"""

from __future__ import annotations

import weakref

from ..._capabilities import TailBatch
from ..._event import Event
from ._database import Database, Row
from ._topics import EVENT_COLUMNS, TopicHub, TopicLog, event_of

__all__ = ["MySQLTail", "TopicReader", "read_sql"]

_TAIL_BATCH = TopicLog.LIMIT
"""The most events a tail reads (and hands out) at once."""


def read_sql(db: Database) -> str:
    """Events of a topic (``%s``) after an ID (``%s``), at most ``%s``, in ID order."""
    return (
        f"SELECT {EVENT_COLUMNS} FROM {db.tables.events} "
        "WHERE topic = %s AND id > %s ORDER BY id LIMIT %s"
    )


class TopicReader:
    """Reads one topic after a position for this process, woken by the topic's signal.

    The reader counts itself in its ``TopicLog`` (and in the hub's poll) from here until
    ``_stop``, or until it is garbage-collected (a tail dropped without ``close``).
    ``_next`` is its position: every event up to it was handed out, or does not exist (a
    duplicate that was dropped, or pruned).
    """

    def __init__(
        self,
        db: Database,
        hub: TopicHub,
        topic: str,
        start: int,
        poll_interval: float | None,
    ) -> None:
        self._db = db
        self._hub = hub
        self.topic = topic
        self._read_sql = read_sql(db)
        self._log = hub.join(topic, poll_interval)
        # A reader dropped without close() leaves the log and the poll when collected.
        self._leave = weakref.finalize(self, hub.leave, topic, poll_interval)
        self._leave.atexit = False
        self._next = start
        self._waiting = False
        self._closed = False
        self._resync_pending = False
        """The server restarted since this reader's position was set: ``_resync`` first."""

    def _restarted(self) -> None:
        """The server restarted (called by the streamer, before any result of the new
        server is read): go back before looking again, and wake a waiting read."""
        self._resync_pending = True
        if self._waiting:
            self._log.signal.fire()

    async def _resync(self) -> None:
        """Go back to a position the restarted server kept (clears ``_resync_pending``).
        Raises ``AdapterError``."""
        raise NotImplementedError

    async def _fetch_stable(self, what: str, sql: str, args: tuple[object, ...]) -> list[Row]:
        """Rows of a read during which no server restart was seen."""
        while True:
            restarts = self._db.restarts
            rows = await self._db.fetch(what, sql, args)
            if self._db.restarts == restarts:
                return rows

    async def _look(self, limit: int) -> tuple[int, list[Event]]:
        """Up to ``limit`` events after the position (which moves past them; none if there
        are none yet), and the signal generation read before looking, for ``_wait``."""
        topic_log = self._log
        generation = topic_log.signal.generation
        while True:
            if self._resync_pending:
                await self._resync()
            events, reached = topic_log.after(self._next, limit)
            if reached is not None:
                self._next = reached
                if events:
                    return generation, events
                continue  # a kept range with no events in it (duplicates were dropped)
            known = topic_log.last
            if known <= self._next:
                return generation, []
            after = self._next
            restarts = self._db.restarts
            rows = await self._db.fetch(
                f"receiving from {self.topic!r}", self._read_sql, (self.topic, after, limit)
            )
            if self._db.restarts != restarts or self._resync_pending:
                continue  # the server restarted meanwhile: who answered is unknown
            events = [event_of(row, self.topic) for row in rows]
            if len(events) >= limit:
                upto = events[-1].id
            else:  # everything committed up to `known` (at least) was visible
                upto = max(known, events[-1].id if events else after)
            if upto > topic_log.last:
                self._hub.found()  # another process's events, beyond what the poll saw
            topic_log.cover(after, upto, events)
            self._next = max(self._next, upto)
            return generation, events

    async def _wait(self, generation: int) -> None:
        """Wait for the topic's signal to fire after ``generation`` (at once if it did)."""
        self._waiting = True
        try:
            await self._log.signal.wait(None, generation)
        finally:
            self._waiting = False

    def _stop(self) -> bool:
        """Mark closed, leave the log and the poll, end a pending wait; whether this call
        closed it. (The wake-up is the topic's signal: every waiter of the topic here looks
        once more, without a query, which is why it fires only if this reader waits.)"""
        if self._closed:
            return False
        self._closed = True
        self._leave()
        if self._waiting:
            self._log.signal.fire()
        return True


class MySQLTail(TopicReader):
    """Follows one topic of a ``MySQLEventStreamer`` from where it was opened (a
    ``Tail``): read like a receiver, with no cursor, no name and no connection of its own.

    Gaps. Reading ``id > position`` misses no committed event and the poll reads state
    (the topic's committed last ID), not messages that could be lost, so a failing
    database delays a tail (its read raises ``AdapterError``; the next read goes on from
    the same position) but never makes it skip. One exception: after the server restarted
    (a crash may have undone events the tail handed out, and given their IDs to others)
    the next batch has ``gap`` set, and the tail goes on from the topic's last ID at that
    moment. Not detected: events the pruner deleted before the tail read them, which
    takes a tail not read for ``event_retention`` (10 minutes by default).
    """

    def __init__(
        self, db: Database, hub: TopicHub, topic: str, start: int, poll_interval: float | None
    ) -> None:
        super().__init__(db, hub, topic, start, poll_interval)
        self._last_sql = f"SELECT last_id FROM {db.tables.topics} WHERE topic = %s"
        self._gap = False

    async def _resync(self) -> None:
        rows = await self._fetch_stable("reopening a tail", self._last_sql, (self.topic,))
        last = int(rows[0][0]) if rows else 0
        self._log.advance(last)
        self._next = last
        self._resync_pending = False
        self._gap = True

    def __aiter__(self) -> MySQLTail:
        return self

    async def __anext__(self) -> TailBatch:
        while True:
            if self._closed:
                raise StopAsyncIteration
            generation, events = await self._look(_TAIL_BATCH)
            if self._closed:
                raise StopAsyncIteration
            if self._gap:
                self._gap = False
                return TailBatch(events, gap=True)
            if events:
                return TailBatch(events)
            await self._wait(generation)

    async def close(self) -> None:
        """Stop: a pending or later read ends the iteration. Idempotent."""
        self._stop()
