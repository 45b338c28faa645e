"""What one process knows of the topics of a MySQL event log (``TopicLog``), and the one
poll per process that finds other processes' events (``TopicHub``).

A topic's IDs become visible in order (see ``MySQLEventStreamer``), so every committed
fact this process learns about a topic is of one of two shapes: "the topic's last ID is at
least N" (``TopicLog.last``) and "between IDs A and B there are exactly these events"
(``TopicLog.cover``: this process's own committed sends, and every read). The log keeps
the latest such range of events while readers of the topic are open here, so receivers
and tails take what this process sent, or what another reader here read, without a query;
they query only when ``last`` says there is more than they have.

``last`` moves on this process's sends (after their commit), on reads, and on the hub's
poll: one statement for every topic with an open reader here, reading each topic's events
after its ``last`` (up to ``TopicLog.LIMIT`` a topic, ``UNION ALL`` of one primary-key
range each). A topic's IDs become visible in order, so the events found are every event
after ``last`` up to the highest found: the poll is exact, never a hint that can be lost,
and one round trip both finds and reads another process's events for all of the topic's
readers here, then fires the topic's signal. The poll runs while at least
one reader is open: every ``poll_min`` while the log is busy, that is for ``poll_busy``
seconds after the last sign of activity (a poll or a read that found another process's
events, or a send from this process, whose consumers elsewhere are likely to answer), then
doubling while idle up to its cap: ``poll_max``, or the smallest ``poll_interval`` of an
open receiver if that is shorter. A hop from one process to another thus waits about
``poll_min / 2`` while work flows, and an idle process costs one query per ``poll_max``.

Server restarts. What a read saw may not have been durable (``Database``): after a crash
the server may have undone it, and given its IDs to new events. When the ``Database`` sees
the server restarted, every log forgets what it knew (``TopicLog.reset``: ``last`` back to
0, kept events dropped, readers woken), and the next poll reads each topic's ``last_id``
from the ``topics`` table again before it reads events; a poll or read that was under way
when the restart was seen drops what it found. (The readers go back too: see the
streamer.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from ..._errors import AdapterError
from ..._event import Event
from ..._kit._signal import Signal
from .._rows import HeaderDecoder
from ._database import Database

__all__ = ["TopicHub", "TopicLog", "event_of", "hub_of"]

log = logging.getLogger("conveyor.adapters.mysql")

_headers = HeaderDecoder(log)

EVENT_COLUMNS = "id, foreign_id, type, headers, created_at"
"""The columns ``event_of`` reads, in its order."""


def event_of(row: Sequence[Any], topic: str) -> Event:
    """An event of ``topic`` from a row of ``EVENT_COLUMNS``; headers that do not decode
    are handed out empty (consumers skip the event) rather than raised: one row must not
    stop its topic."""
    event_id, foreign_id, event_type, headers, created_at = row
    return Event(
        id=int(event_id),
        foreign_id=foreign_id,
        type=int(event_type),
        headers=_headers.decode(
            headers,
            ("event", topic, event_id),
            f"event {event_id} of topic {topic!r}",
            topic=topic,
            foreign_id=foreign_id,
        ),
        created_at=created_at.replace(tzinfo=UTC),
    )


def _event_id(event: Event) -> int:
    return event.id


class TopicLog:
    """What this process knows of one topic: its last committed ID (``last``) and, while
    it has readers here, the events of the latest range of IDs it knows completely."""

    __slots__ = ("end", "events", "last", "readers", "signal", "start", "topic")

    LIMIT = 512
    """Events kept (between ``LIMIT`` and twice as many), and the most a poll reads."""

    def __init__(self, topic: str, signal: Signal) -> None:
        self.topic: str = topic
        self.signal: Signal = signal
        """Fired whenever ``last`` moves (and when a waiting reader closes)."""
        self.last: int = 0
        """The highest ID known to be committed in the topic (0: none known)."""
        self.readers: int = 0
        """Open receivers and tails of the topic in this process."""
        self.events: list[Event] = []
        self.start: int = 0
        self.end: int = 0
        # ``events`` is every event with start < id <= end, in ID order.

    def advance(self, last: int) -> None:
        """The topic's last committed ID is at least ``last``: wake its readers if new."""
        if last > self.last:
            self.last = last
            self.signal.fire()

    def reset(self) -> None:
        """Forget what is known of the topic (the server restarted: what was read may be
        gone, and its IDs given to other events), and wake the readers."""
        self.last = 0
        self.events, self.start, self.end = [], 0, 0
        self.signal.fire()

    def cover(self, after: int, upto: int, events: Sequence[Event]) -> None:
        """``events`` (in ID order) are every event with ``after < id <= upto``, all
        committed: keep them for this process's readers, and ``advance`` to ``upto``."""
        if upto > after and self.readers:
            kept = self.events
            if self.start < self.end and after == self.end:  # the usual case: appending
                kept.extend(events)
                self.end = upto
            elif self.start < self.end and after <= self.end and upto >= self.start:
                before = kept[: bisect_right(kept, after, key=_event_id)]
                beyond = kept[bisect_right(kept, upto, key=_event_id) :]
                self.events = [*before, *events, *beyond]
                self.start, self.end = min(self.start, after), max(self.end, upto)
            elif upto > self.end:  # nothing kept, or a newer range apart from it
                self.events, self.start, self.end = list(events), after, upto
            self._trim()
        elif not self.readers and self.events:
            self.events, self.start, self.end = [], 0, 0
        self.advance(upto)

    def _trim(self) -> None:
        excess = len(self.events) - 2 * self.LIMIT
        if excess > 0:  # in bulk, so that appends stay cheap
            excess += self.LIMIT
            self.start = self.events[excess - 1].id
            del self.events[:excess]

    def after(self, position: int, limit: int) -> tuple[list[Event], int | None]:
        """Up to ``limit`` kept events after ``position``, and the position a reader
        reaches by taking them (past IDs known to hold no event); ``None`` if the kept
        range does not tell what follows ``position``."""
        if not self.start <= position < self.end:
            return [], None
        events = self.events
        i = bisect_right(events, position, key=_event_id)
        taken = events[i : i + limit]
        if i + limit < len(events):
            return taken, taken[-1].id
        return taken, self.end

    def has_after(self, position: int) -> bool:
        """Whether an event past ``position`` is known (or cannot be ruled out) here."""
        if self.last <= position:
            return False
        events, reached = self.after(position, 1)
        return bool(events) or reached is None or reached < self.last


class TopicHub:
    """The ``TopicLog`` of every topic used in this process, and their one poll
    (module docstring). One per ``Database``: ``hub_of(db)``."""

    def __init__(self, db: Database) -> None:
        # Weak: the hubs are kept per database in a WeakKeyDictionary, whose values must
        # not keep their keys alive.
        self._db_ref = weakref.ref(db)
        self._options = db.options
        self._logs: dict[str, TopicLog] = {}
        self._caps: Counter[float] = Counter()
        self._nudge = Signal()
        self._task: asyncio.Task[None] | None = None
        self._busy_until = 0.0
        self.polls: int = 0
        """How many polls ran (for tests and metrics)."""
        self._stale = False  # the server restarted: read every topic's last_id first
        self._last_ids_sql = f"SELECT topic, last_id FROM {db.tables.topics} WHERE topic IN "
        db.on_restart(self._restarted)
        self._poll_part = (
            f"(SELECT topic, {EVENT_COLUMNS} FROM {db.tables.events} "
            f"WHERE topic = %s AND id > %s ORDER BY id LIMIT {TopicLog.LIMIT})"
        )

    @property
    def _db(self) -> Database:
        db = self._db_ref()
        if db is None:
            raise AdapterError("the MySQL database of this event log is gone")
        return db

    def log(self, topic: str) -> TopicLog:
        """The topic's log (made on first use)."""
        found = self._logs.get(topic)
        if found is None:
            found = self._logs[topic] = TopicLog(topic, self._db.signal(f"e:{topic}"))
        return found

    def _restarted(self) -> None:
        """The server restarted (called by the ``Database``): forget every topic."""
        for topic_log in self._logs.values():
            topic_log.reset()
        self._stale = True
        self._nudge.fire()

    def join(self, topic: str, poll_interval: float | None) -> TopicLog:
        """A reader of ``topic`` opens here: poll for it (at least every
        ``poll_interval``, if given)."""
        topic_log = self.log(topic)
        topic_log.readers += 1
        if poll_interval is not None and poll_interval > 0:
            self._caps[poll_interval] += 1
            self._nudge.fire()  # the poll may have to come sooner
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="conveyor-mysql-topic-poll"
            )
        return topic_log

    def leave(self, topic: str, poll_interval: float | None) -> None:
        """A reader of ``topic`` closed (the poll stops with the last one)."""
        topic_log = self._logs[topic]
        topic_log.readers -= 1
        if not topic_log.readers:
            topic_log.events, topic_log.start, topic_log.end = [], 0, 0
        if poll_interval is not None and poll_interval > 0:
            self._caps[poll_interval] -= 1
            if not self._caps[poll_interval]:
                del self._caps[poll_interval]
        if not self.reading:
            self._nudge.fire()

    @property
    def reading(self) -> bool:
        """Whether any reader is open here."""
        return any(topic_log.readers for topic_log in self._logs.values())

    def found(self) -> None:
        """A sign of activity (a reader here read events of another process, or this
        process sent): keep polling every ``poll_min`` for ``poll_busy`` seconds."""
        now = time.monotonic()
        if now >= self._busy_until:
            self._nudge.fire()  # an idle poll may be sleeping up to poll_max: look now
        self._busy_until = now + self._options.poll_busy

    async def stop_if_idle(self) -> None:
        """End the poll now if no reader is open (a closing streamer waits for it)."""
        task = self._task
        if task is not None and not self.reading:
            self._task = None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _cap(self) -> float:
        cap = self._options.poll_max
        return min(cap, min(self._caps)) if self._caps else cap

    async def _run(self) -> None:
        floor = self._options.poll_min
        delay, failures = floor, 0
        while True:
            await self._nudge.wait(min(delay, self._cap()))
            if not self.reading or self._db_ref() is None:
                return
            try:
                moved = await self.poll()
            except Exception as exc:  # AdapterError, or a bug: readers depend on the poll
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("cannot poll the event log (will retry): %s", exc)
                delay = self._cap()
                continue
            failures = 0
            if moved:
                self.found()
            busy = moved or time.monotonic() < self._busy_until
            delay = floor if busy else min(2 * delay, self._cap())

    async def poll(self) -> bool:
        """Look once for other processes' events in every topic read here; whether any
        topic moved. Raises ``AdapterError``."""
        reading = [topic_log for topic_log in self._logs.values() if topic_log.readers]
        if not reading:
            return False
        self.polls += 1
        if self._stale:
            return await self._read_last_ids(reading)
        db = self._db
        restarts = db.restarts
        sql = " UNION ALL ".join([self._poll_part] * len(reading))
        args: list[object] = []
        for topic_log in reading:
            args += (topic_log.topic, topic_log.last)
        rows = await db.fetch("polling the event log", sql, args)
        if db.restarts != restarts:  # the server restarted meanwhile: who answered is unknown
            return True
        found: dict[str, list[Any]] = {}
        for row in rows:
            found.setdefault(row[0], []).append(row[1:])
        moved = False
        for topic_log in reading:
            topic_rows = found.get(topic_log.topic)
            if not topic_rows:
                continue
            topic = topic_log.topic
            events = [event_of(row, topic) for row in topic_rows]
            before, upto = topic_log.last, events[-1].id
            if upto > before:  # else a send here committed them meanwhile: known
                moved = True
                kept = [event for event in events if event.id > before]
                topic_log.cover(before, upto, kept)
        return moved

    async def _read_last_ids(self, reading: Sequence[TopicLog]) -> bool:
        """After a server restart: each topic's ``last_id`` as the server has it now."""
        db = self._db
        restarts = db.restarts
        sql = self._last_ids_sql + "(" + ", ".join(["%s"] * len(reading)) + ")"
        rows = await db.fetch("reading the event log's topics", sql, [t.topic for t in reading])
        if db.restarts != restarts:  # restarted again: still stale
            return True
        self._stale = False
        for topic, last in rows:
            self.log(topic).advance(int(last))
        return True


_hubs: weakref.WeakKeyDictionary[Database, TopicHub] = weakref.WeakKeyDictionary()


def hub_of(db: Database) -> TopicHub:
    """The ``TopicHub`` of ``db`` (every streamer on one database shares it, so a send
    through one wakes the readers of the others)."""
    found = _hubs.get(db)
    if found is None:
        found = _hubs[db] = TopicHub(db)
    return found
