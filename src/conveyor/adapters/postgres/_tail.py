"""Reading a topic in this process: what receivers and tails share (``TopicReader``), and
the tail (``PostgresTail``, the ``TailsTopics`` capability).

A reader takes what this process sent past its position from ``SentCache`` (no query),
else reads the table unless nothing new can be there, and otherwise waits for the topic's
``e:<topic>`` signal of the ``Database``: this process's sends fire it directly, other
processes' NOTIFYs through the database's one LISTEN connection, and while that is down
the wait is bounded by the poll interval (see ``PostgresEventStreamer`` for why reading
``id > position`` never skips an event).
"""

from __future__ import annotations

import logging

import asyncpg

from ..._capabilities import TailBatch
from ..._event import Event
from .._rows import HeaderDecoder
from ._database import Database
from ._sent_cache import SentCache

__all__ = ["PostgresTail", "TopicReader", "event_of"]

_headers = HeaderDecoder(logging.getLogger("conveyor.adapters.postgres"))

_TAIL_BATCH = SentCache.LIMIT
"""The most events a tail reads (and hands out) at once."""


def event_of(row: asyncpg.Record, topic: str) -> Event:
    """An event of ``topic`` read from the events table; headers that do not decode are
    handed out empty (consumers skip the event) rather than raised: one row must not stop
    its topic."""
    event_id, foreign_id = row["id"], row["foreign_id"]
    return Event(
        id=event_id,
        foreign_id=foreign_id,
        type=row["type"],
        headers=_headers.decode(
            row["headers"],
            ("event", topic, event_id),
            f"event {event_id} of topic {topic!r}",
            topic=topic,
            foreign_id=foreign_id,
        ),
        created_at=row["created_at"],
    )


class TopicReader:
    """Reads one topic after an ID for this process, woken by the topic's signal.

    ``read_sql`` takes the topic, the position and a limit (the streamer's). The reader
    counts itself in ``cache.readers`` from here until ``_stop``, so that this process's
    sends to the topic are kept for it.
    """

    def __init__(
        self,
        db: Database,
        topic: str,
        read_sql: str,
        cache: SentCache,
        start: int,
        poll_interval: float | None,
    ) -> None:
        self._db = db
        self.topic = topic
        self._read_sql = read_sql
        self._cache = cache
        self._signal = db.signal(f"e:{topic}")
        self._poll_interval = poll_interval
        self._next = start  # the last ID handed out
        # When a read last found the end: the topic's signal generation and the number
        # of sends from this process then (None: look at the table next time).
        self._caught_up: tuple[int, int] | None = None
        self._waiting = False
        self._closed = False
        cache.readers += 1

    async def _look(self, limit: int) -> tuple[int, list[Event]]:
        """Up to ``limit`` events after the position (which moves past them; none if there
        are none yet), and the signal generation read before looking, for ``_wait``."""
        signal, cache = self._signal, self._cache
        generation, sends = signal.generation, cache.sends
        events = cache.after(self._next, limit)
        if not events and not self._up_to_date(generation, sends):
            rows = await self._db.fetch(
                f"receiving from {self.topic!r}", self._read_sql, self.topic, self._next, limit
            )
            self._caught_up = (generation, sends) if len(rows) < limit else None
            events = [event_of(row, self.topic) for row in rows]
        if events:
            self._next = events[-1].id
        return generation, events

    async def _wait(self, generation: int) -> None:
        """Wait for the topic's signal to fire after ``generation`` (at once if it did), or
        for as long as ``Database.wait_timeout`` allows: then the next look reads anyway."""
        signal = self._signal
        self._waiting = True
        try:
            await signal.wait(self._db.wait_timeout(self._poll_interval), generation)
        finally:
            self._waiting = False
        if signal.generation == generation:
            self._caught_up = None  # a timeout: look anyway (a last-resort check)

    def _up_to_date(self, generation: int, sends: int) -> bool:
        """Whether the table can hold nothing new for us: every send notifies the topic,
        so after a read that reached the end only notifications can announce events; if
        each since then was one of our own sends and we have taken everything they sent,
        there is nothing to read (while the listener is up: else notifications are lost).
        """
        caught = self._caught_up
        cache = self._cache
        return (
            caught is not None
            and self._db.listening
            and generation - caught[0] == sends - caught[1]
            and caught[1] >= cache.gap_at
            and self._next >= cache.last
        )

    def _stop(self) -> bool:
        """Mark closed, leave the cache's readers and end a pending wait; whether this call
        closed it. (The wake-up is the topic's signal: every waiter of the topic in this
        process looks once more, which is why it fires only if this reader is waiting.)"""
        if self._closed:
            return False
        self._closed = True
        self._cache.readers -= 1
        if self._waiting:
            self._signal.fire()
        return True


class PostgresTail(TopicReader):
    """Follows one topic of a ``PostgresEventStreamer`` from where it was opened (a
    ``Tail``): read like a receiver, with no cursor, no name and no connection of its own
    (it waits on the ``Database``'s one LISTEN connection).

    Gaps. Reading ``id > position`` misses no committed event, but a notification can be
    lost while the LISTEN connection is down or reconnecting (the tail then polls, late).
    So the first batch after the listener was lost, or connected again, since the tail's
    previous batch (``Database.listener_connections`` and ``listening`` compared with what
    the tail saw then) has ``gap`` set. It comes at once: the database fires every signal
    when the listener goes down and when it is back, and a gap batch may hold no events.
    Not detected: events the pruner deleted before the tail read them, which takes a
    tail not read for ``event_retention`` (10 minutes by default).
    """

    def __init__(
        self,
        db: Database,
        topic: str,
        read_sql: str,
        cache: SentCache,
        start: int,
        *,
        caught_up: tuple[int, int] | None,
        listener: tuple[int, bool],
    ) -> None:
        super().__init__(db, topic, read_sql, cache, start, None)
        self._caught_up = caught_up
        self._listener = listener  # (connections, listening) at the last look

    def __aiter__(self) -> PostgresTail:
        return self

    async def __anext__(self) -> TailBatch:
        while True:
            if self._closed:
                raise StopAsyncIteration
            gap = self._listener_changed()
            generation, events = await self._look(_TAIL_BATCH)
            if self._closed:
                raise StopAsyncIteration
            if events or gap:
                return TailBatch(events, gap)
            await self._wait(generation)

    def _listener_changed(self) -> bool:
        """Whether the LISTEN connection was lost or (re)connected since the last look."""
        db = self._db
        now = (db.listener_connections, db.listening)
        before, self._listener = self._listener, now
        return now[0] != before[0] or (before[1] and not now[1])

    async def close(self) -> None:
        """Stop: a pending or later read ends the iteration. Idempotent."""
        self._stop()
