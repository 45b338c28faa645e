"""An event log in a SQLite table, read through a cursor per receiver name.

No event is ever skipped. Receivers read ``WHERE topic = ? AND id > last ORDER BY id``,
which is only safe if an event can never commit *after* a reader has seen a higher id.
In SQLite it cannot: a database has one writer at a time (``BEGIN IMMEDIATE`` takes the
write lock before anything is inserted), an ``AUTOINCREMENT`` id is assigned inside that
write transaction, and the lock is released only by its commit. So transactions that
insert events commit in the order of their ids, and a reader's snapshot holds every
event up to the highest id it sees. ``AUTOINCREMENT`` also keeps ids from being reused
after the newest rows are deleted, so a stored cursor never points at an id that a
later event could take.

Cursors (table ``cursors``) persist across restarts and processes. A receiver's cursor
advances only over an unbroken run of acknowledged events (``AckTracker``); positions
are written in the background (``CursorFlusher``), one transaction per batch, retried
after a failure, and on ``close()``. A crash
loses at most the last batch's cursor writes: those events are delivered again (the
delivery guarantee is at least once).

Pruning: events are deleted once every receiver name registered on their topic has
acknowledged them and they are older than ``retention`` seconds. A receiver opened
without ``stream_from_latest`` registers its name at once (a cursor row at position 0)
so that the topic is kept for it before it acknowledges anything; ``retention`` also
covers consumers that start a little after the others (a name that was never opened
starts at the oldest event still kept). Receivers opened with ``stream_from_latest``
that never acknowledge leave no row behind, and neither do tails (``SQLiteTail``, the
``TailsTopics`` capability: they read like receivers, without a cursor). Topics
nobody registered on are pruned by age alone. A registered name that will never read
again (a consumer of a removed step, or of an old ``parallel_count``) keeps its topic
from being pruned until ``drop_cursor`` forgets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import weakref
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import msgspec

from ..._capabilities import TailBatch
from ..._clock import Clock, SystemClock
from ..._errors import AdapterError
from ..._event import Event
from ..._kit._acks import AckTracker, NotHandedOut
from ..._kit._flusher import CursorFlusher, CursorKey
from ..._kit._sender import EventSenderBase
from ..._protocols import Delivery, OutgoingEvent
from .._rows import HeaderDecoder
from ._db import Database, from_us, to_us
from ._pruning import EventPruner, last_event_id

__all__ = ["SQLiteEventReceiver", "SQLiteEventSender", "SQLiteEventStreamer", "SQLiteTail"]

_log = logging.getLogger("conveyor.adapters.sqlite")
_encode = msgspec.json.encode
_headers = HeaderDecoder(_log)

_FALLBACK_POLL = 1.0
"""Seconds a receiver waits between looks if no wake-up comes (a safety net only)."""
_TAIL_BATCH = 512
"""The most events a tail reads (and hands out) at once."""


def _event(row: sqlite3.Row, topic: str) -> Event:
    """An event of ``topic`` as read; headers that do not decode are handed out empty
    (consumers skip the event) rather than raised: one row must not stop its topic."""
    event_id, foreign_id = row["id"], row["foreign_id"]
    return Event(
        event_id,
        foreign_id,
        row["type"],
        _headers.decode(
            row["headers"],
            ("event", topic, event_id),
            f"event {event_id} of topic {topic!r}",
            topic=topic,
            foreign_id=foreign_id,
        ),
        from_us(row["created_at"]),
    )


def _fetch(conn: sqlite3.Connection, *, topic: str, after: int, limit: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT id, foreign_id, type, headers, created_at FROM events "
        "WHERE topic = ? AND id > ? ORDER BY id LIMIT ?",
        (topic, after, limit),
    ).fetchall()


class SQLiteEventStreamer:
    """``EventStreamer`` on a SQLite table: one log for all topics, ids unique and increasing.

    Senders append in one transaction per ``send_many``. A receiver is woken at once by
    this process's sends and within a few milliseconds by other processes' (its
    ``poll_interval``, if given, bounds the wait between looks). ``retention`` and
    ``prune_interval`` (seconds) govern pruning (see the module docstring); ``prune()``
    runs one pass on demand. ``tail`` follows a topic from its end (``TailsTopics``).
    """

    delivery: Delivery = Delivery.CURSOR

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        retention: float = 60.0,
        prune_interval: float = 5.0,
        owns_db: bool = False,
    ) -> None:
        self._db = db
        self._clock: Clock = clock or SystemClock()
        self._owns_db = owns_db
        self._topics: set[str] = set()
        self._cursors = CursorFlusher(
            self._write_cursors, shield=True, log=_log, name="conveyor-sqlite-cursor-flusher"
        )
        self._pruner = EventPruner(
            db, retention=retention, interval=prune_interval, before=self._flush_cursors
        )
        self._receivers: set[SQLiteEventReceiver] = set()
        self._tails: weakref.WeakSet[SQLiteTail] = weakref.WeakSet()
        self._retention = retention
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        clock: Clock | None = None,
        retention: float = 60.0,
        prune_interval: float = 5.0,
        create_schema: bool = True,
        **options: Any,
    ) -> SQLiteEventStreamer:
        """A streamer on ``path`` with its own connection (``options`` go to ``Database``)."""
        db = Database(path, **options)
        await db.open(create_schema=create_schema)
        return cls(
            db, clock=clock, retention=retention, prune_interval=prune_interval, owns_db=True
        )

    async def close(self) -> None:
        """Close every receiver and tail, write the cursors, stop pruning. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for receiver in list(self._receivers):
            await receiver.close()
        for tail in list(self._tails):
            await tail.close()
        await self._pruner.close()
        await self._cursors.close()
        if self._owns_db:
            await self._db.close()

    # ------------------------------------------------------------------ endpoints

    async def new_sender(self, topic: str) -> SQLiteEventSender:
        self._check_open()
        await self._register_topic(topic)
        return SQLiteEventSender(self, topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> SQLiteEventReceiver:
        self._check_open()
        await self._register_topic(topic)
        await self._flush_cursors()  # a cursor acknowledged in this process counts

        def start(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute(
                "SELECT position FROM cursors WHERE topic = ? AND name = ?", (topic, name)
            ).fetchone()
            newest = conn.execute(
                "SELECT MAX(id) AS newest FROM events WHERE topic = ?", (topic,)
            ).fetchone()["newest"]
            if row is not None and row["position"] > 0:
                return int(row["position"]), newest or 0
            if stream_from_latest:
                # After every event that exists now (in any topic: ids are global).
                return last_event_id(conn), newest or 0
            if row is None:
                conn.execute(
                    "INSERT OR IGNORE INTO cursors (topic, name, position) VALUES (?, ?, 0)",
                    (topic, name),
                )
            return 0, newest or 0

        begin, newest = await (self._db.fast_read if stream_from_latest else self._db.fast_write)(
            start
        )
        self._db.hub.saw(("events", topic), newest)
        receiver = SQLiteEventReceiver(self, topic, name, begin, poll_interval)
        self._receivers.add(receiver)
        if not self._closed:
            self._pruner.start()
        return receiver

    async def tail(self, topic: str) -> SQLiteTail:
        """A tail of ``topic`` after every event that exists now (ids are global): no cursor
        row, no registration, nothing written (``TailsTopics``; see ``SQLiteTail``)."""
        self._check_open()
        version = self._db.hub.version(("events", topic))
        covered_at = time.monotonic()
        start = await self._db.fast_read(last_event_id)
        tail = SQLiteTail(
            self._db,
            topic,
            start,
            version=version,
            covered_at=covered_at,
            retention=self._retention,
        )
        self._tails.add(tail)
        return tail

    async def drop_cursor(self, topic: str, name: str) -> bool:
        """Forget a receiver name's cursor (one that will never read again, such as a
        consumer of a removed step): it no longer keeps the topic's events from being
        pruned. Returns whether it existed."""

        def delete(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM cursors WHERE topic = ? AND name = ?", (topic, name))
            return cur.rowcount > 0

        return await self._db.fast_write(delete)

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("the SQLite event streamer is closed")

    async def _register_topic(self, topic: str) -> None:
        if topic in self._topics:
            return

        def register(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR IGNORE INTO topics (topic) VALUES (?)", (topic,))

        await self._db.fast_write(register)
        self._topics.add(topic)

    async def _append(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        now = to_us(self._clock.now())
        rows = [
            (topic, e.foreign_id, int(e.type), _encode(e.headers).decode(), now) for e in events
        ]
        db = self._db

        def insert(conn: sqlite3.Connection) -> int:
            conn.executemany(
                "INSERT INTO events (topic, foreign_id, type, headers, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            (last,) = conn.execute("SELECT last_insert_rowid()").fetchone()
            db.note_own("events", len(rows))
            return int(last)

        last = await db.fast_write(insert)
        db.hub.local(("events", topic), last)

    def _commit(self, topic: str, name: str, position: int) -> None:
        """A receiver's cursor advanced: write it soon (one transaction for a batch)."""
        self._cursors.mark(topic, name, position)

    async def _flush_cursors(self) -> None:
        await self._cursors.flush()

    async def _write_cursors(self, batch: Mapping[CursorKey, int]) -> None:
        rows = [(topic, name, position) for (topic, name), position in batch.items()]

        def upsert(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO cursors (topic, name, position) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, name) DO UPDATE "
                "SET position = MAX(position, excluded.position)",
                rows,
            )

        await self._db.fast_write(upsert)

    def _forget(self, receiver: SQLiteEventReceiver) -> None:
        self._receivers.discard(receiver)

    # ------------------------------------------------------------------ pruning

    async def prune(self) -> int:
        """Delete the events every registered receiver has passed and that are older than
        ``retention``; returns how many were deleted (see ``EventPruner``)."""
        return await self._pruner.prune()


class SQLiteEventSender(EventSenderBase):
    """Appends to one topic of a ``SQLiteEventStreamer`` (one transaction per call)."""

    def __init__(self, streamer: SQLiteEventStreamer, topic: str) -> None:
        super().__init__(topic)
        self._streamer = streamer

    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        await self._streamer._append(self.topic, events)


class _TopicReader:
    """Reads one topic after an id, woken by the database's hub: what receivers and tails
    share. Local sends wake it at once, other processes' through the hub, and without a
    wake-up it looks again every ``poll`` seconds (a safety net)."""

    def __init__(self, db: Database, topic: str, start: int, poll: float) -> None:
        self._db = db
        self._topic = topic
        self._key = ("events", topic)
        self._poll = poll
        self._last = start  # the highest id handed out
        self._caught_up = -1  # the topic's wake-up version when a look found everything
        self._closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = False

    async def _look(self, limit: int) -> list[Event] | None:
        """Wait until the topic may hold events past ``_last``, then read up to ``limit``
        of them (none if the look found nothing new); ``None`` once closed."""
        hub = self._db.hub
        while True:
            if self._closed:
                return None
            seen = hub.version(self._key)
            if seen != self._caught_up:
                break
            # Nothing was sent to the topic since a look that found everything: wait (the
            # poll interval still bounds the wait, as a safety net).
            await hub.wait(self._key, seen, self._poll, self._closing)
            self._caught_up = -1
        rows = await self._db.fast_read(
            partial(_fetch, topic=self._topic, after=self._last, limit=limit)
        )
        if self._closed:
            return None
        if len(rows) < limit:
            self._caught_up = seen
        events = [_event(row, self._topic) for row in rows]
        if events:
            self._last = events[-1].id
            hub.saw(self._key, self._last)
        return events

    def _stop(self) -> bool:
        """Mark closed and wake a pending look; whether this call closed it."""
        if self._closed:
            return False
        self._closed = True
        self._closing.set_result(None)
        return True


class SQLiteEventReceiver(_TopicReader):
    """Reads one topic of a ``SQLiteEventStreamer`` from the cursor stored under a name."""

    def __init__(
        self,
        streamer: SQLiteEventStreamer,
        topic: str,
        name: str,
        start: int,
        poll_interval: float | None,
    ) -> None:
        poll = _FALLBACK_POLL if poll_interval is None else max(0.001, poll_interval)
        super().__init__(streamer._db, topic, start, poll)
        self._streamer = streamer
        self._name = name
        self._acks = AckTracker(start)

    def pending(self) -> int:
        """Non-zero while this process knows of events not handed out yet (a hint)."""
        return 1 if self._db.hub.known_last(self._key) > self._last else 0

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        limit = max(1, max_events)
        while True:
            events = await self._look(limit)
            if events is None:
                raise AdapterError(f"receiver {self._name!r} is closed")
            if events:
                self._acks.hand_out([e.id for e in events])
                return events

    async def ack(self, event: Event) -> None:
        try:
            moved = self._acks.ack(event.id)
        except NotHandedOut:
            raise AdapterError(
                f"event {event.id} was not handed out by receiver {self._name!r}"
            ) from None
        if moved:
            self._streamer._commit(self._topic, self._name, self._acks.committed)

    async def close(self) -> None:
        if not self._stop():  # a pending recv wakes up and reports the close
            return
        self._streamer._forget(self)
        if not self._db.closed:
            # On failure the positions stay pending for the next flush; at worst the
            # events are delivered again.
            with contextlib.suppress(AdapterError):
                await self._streamer._flush_cursors()


class SQLiteTail(_TopicReader):
    """Follows one topic of a ``SQLiteEventStreamer`` from where it was opened (a ``Tail``).

    It reads like a receiver (``WHERE topic = ? AND id > last ORDER BY id``, up to 512
    events a batch, woken through the hub) but has no cursor row and no name in
    ``cursors``, so it holds back no pruning and leaves nothing behind.

    Gaps. Not being registered, a tail can lose events to the pruner, which deletes the
    events every registered name has passed once they are older than ``retention``. It
    measures that age without timestamps: it may delete up to the highest id it noted at
    a pass ``retention`` seconds ago, that is only events committed before that pass. A
    tail knows a moment ``covered_at`` before which every event of its topic was handed
    out (its last read that reached the end started after it) or announced as a gap (its
    last batch with ``gap``). An event committed after ``covered_at`` can only be deleted
    more than ``retention`` seconds after ``covered_at``; so a read that returns within
    ``retention`` of it misses nothing, and one that returns later hands out its batch
    with ``gap`` set (with no events if it found none). Only a tail that is not read for
    about ``retention`` seconds (60 by default) sees one; one read continuously looks
    again at least every second. This assumes that every process pruning the database
    uses the same ``retention``, as pruning already assumes for late receivers.
    """

    def __init__(
        self,
        db: Database,
        topic: str,
        start: int,
        *,
        version: int,
        covered_at: float,
        retention: float,
    ) -> None:
        super().__init__(db, topic, start, _FALLBACK_POLL)
        # It starts at the end as of ``version``: only a wake-up (or the poll) brings more.
        self._caught_up = version
        self._covered_at = covered_at
        self._retention = retention

    def __aiter__(self) -> SQLiteTail:
        return self

    async def __anext__(self) -> TailBatch:
        while True:
            started = time.monotonic()
            events = await self._look(_TAIL_BATCH)
            if events is None:
                raise StopAsyncIteration
            gap = time.monotonic() - self._covered_at >= self._retention
            if gap or len(events) < _TAIL_BATCH:
                self._covered_at = started
            if events or gap:
                return TailBatch(events, gap)

    async def close(self) -> None:
        """Stop: a pending or later read ends the iteration. Idempotent."""
        self._stop()
