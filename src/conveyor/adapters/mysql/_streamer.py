"""``MySQLEventStreamer``: an event log in MySQL/MariaDB tables, cursors per receiver
name, wake-ups in-process and by adaptive polling across processes.

Gap-free reading: a per-topic ID counter row, locked by the writing transaction. A reader
that keeps ``id > cursor`` loses an event when a lower ID commits after a higher one, and
MySQL has neither LISTEN/NOTIFY nor snapshot functions to tell which IDs are still in
flight. So IDs are per topic and come from the topic's row in the ``topics`` table: a
sender takes a block of them with ``UPDATE topics SET last_id = LAST_INSERT_ID(last_id +
n)`` (an ``INSERT ... ON DUPLICATE KEY UPDATE`` of the same for a new topic) in the
transaction that inserts the events. The row stays locked until that transaction commits,
so the next sender to the topic waits there and takes higher IDs only once the lower ones
are visible: a topic's IDs become visible in order, and ``id > cursor`` never skips one,
however long a writer keeps its transaction open (its successors wait for it, up to
``innodb_lock_wait_timeout``; the tests hold one open for 10 s). The price is that senders
to *one* topic commit one after another; different topics do not wait for each other, and
readers (consistent reads, READ COMMITTED) never wait for anyone. In the engine a topic's
writers are few: the outbox relay, or the record store's writes of one status.

At most once per write. Engine events carry the run ID and record version of the write
that produced them; a second copy of one (the relay sends again after a crash between
sending and deleting its outbox rows) is dropped by a unique index on a hash of the two,
so consumers do not run a step twice for one write at the same time. (IDs then have a
gap, which readers step over.)

Wake-ups. Receivers and tails in the sending process are woken at once after the commit
and take the events from the process's ``TopicLog`` without a query. Other processes find
them by polling (``TopicHub``): one statement per process per poll, for every topic with
an open reader there, ``poll_min`` (10 ms) after a poll or read found another process's
events, doubling while idle to ``poll_max`` (1 s), or to the smallest ``poll_interval`` of
an open receiver if shorter (the engine passes its ``polling_frequency``, 0.5 s by
default). Idle cost: one indexed ``SELECT`` per process per cap (1 to 2 queries a second
with the defaults), whatever the number of receivers and tails; a topic that moved costs
one more read, shared by all of its readers in the process. Nothing polls in a process
with no reader open. Cross-process latency is up to the current poll interval: 10 to 20 ms
while the topic is busy, up to the cap after an idle spell.

Cursors. ``ack`` is local and cheap: the position advances over an unbroken run of acks
and is written by a background flusher at most every ``ack_flush_interval`` (all dirty
cursors of the process in one statement), and by ``close``. A crash loses at most that
interval's cursor progress, which means redelivery (at least once), never loss. Open
receivers rewrite their cursor every ``cursor_retention / 8`` so that the pruner sees
them alive; receivers that never ack (``Workflow.wait`` uses such) write nothing.

Server restarts. A crash of the server may undo commits that readers here had already
seen (they become visible before they are durable), and the topic's counter goes back with
them, so their IDs are given to new events. Positions learned from such reads are past
those new events; so when the ``Database`` sees the server restarted, before the new
server's answers are read: the ``TopicLog``s forget what they knew, the positions not yet
written are dropped (a new flusher takes the marks from then on; the old one writes
nothing more), and every open receiver goes back to its stored cursor (read again; or to
where it was opened, if it has none) with a new ``AckTracker``: what it hands out again is
redelivered (at least once; the engine's version rule absorbs it), and an ``ack`` of an
event handed out before the restart is ignored (its ID may now be another event's). Stored
cursors are safe: a cursor write that survived the crash was committed after the events
before it, and commits become durable in order. Tails go on from the topic's last ID with
a gap (``MySQLTail``). A send whose ``COMMIT`` got no answer is not reported to the
readers (``appended`` runs only after a commit that succeeded).

Tails (``tail``, the ``TailsTopics`` capability) read like receivers from the topic's
``last_id`` at their opening, with no cursor and no connection of their own; see
``MySQLTail``. Pruning of consumed events and dead cursors: ``Pruner``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from ..._errors import AdapterError
from ..._event import Event, Header
from ..._kit._acks import AckTracker, NotHandedOut
from ..._kit._flusher import CursorFlusher, CursorKey
from ..._kit._sender import EventSenderBase
from ..._protocols import Delivery, OutgoingEvent
from ._database import Connection, Cursor, Database
from ._tail import MySQLTail, TopicReader
from ._topics import hub_of

__all__ = ["Appended", "MySQLEventReceiver", "MySQLEventSender", "MySQLEventStreamer"]

log = logging.getLogger("conveyor.adapters.mysql")

_encode_headers = msgspec.json.Encoder().encode
_ROW = "(%s, %s, %s, %s, %s, %s, %s)"


def _dedupe(headers: Mapping[str, str]) -> bytes | None:
    """The identity of an engine event (one per record write), else ``None``."""
    run_id = headers.get(Header.RUN_ID)
    version = headers.get(Header.RECORD_VERSION)
    if run_id is None or version is None:
        return None
    return hashlib.blake2b(f"{run_id}\0{version}".encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Appended:
    """Events a transaction appended to a topic: IDs ``base + 1`` to ``last`` were taken,
    ``events`` are the ones inserted (duplicates dropped). Hand it to
    ``MySQLEventStreamer.appended`` once the transaction has committed."""

    topic: str
    base: int
    last: int
    events: list[Event]


class MySQLEventStreamer:
    """``EventStreamer`` on MySQL/MariaDB tables (see the module docstring)."""

    delivery: Delivery = Delivery.CURSOR

    def __init__(self, db: Database) -> None:
        self._db = db
        self._hub = hub_of(db)
        t = db.tables
        self._take_sql = (
            f"UPDATE {t.topics} SET last_id = LAST_INSERT_ID(last_id + %s) WHERE topic = %s"
        )
        self._take_new_sql = (
            f"INSERT INTO {t.topics} (topic, last_id) VALUES (%s, LAST_INSERT_ID(%s)) "
            "ON DUPLICATE KEY UPDATE last_id = LAST_INSERT_ID(last_id + %s)"
        )
        self._insert_sql = (
            f"INSERT INTO {t.events} (topic, id, foreign_id, type, headers, created_at, dedupe) "
            "VALUES "
        )
        self._inserted_sql = (
            f"SELECT id FROM {t.events} WHERE topic = %s AND id > %s AND id <= %s ORDER BY id"
        )
        self._last_sql = f"SELECT last_id FROM {t.topics} WHERE topic = %s"
        self._open_sql = (
            f"SELECT (SELECT position FROM {t.cursors} WHERE topic = %s AND name = %s), "
            f"(SELECT last_id FROM {t.topics} WHERE topic = %s)"
        )
        self._save_sql = (
            f"INSERT INTO {t.cursors} (topic, name, position, updated_at) "
            "SELECT n.topic, n.name, n.position, UTC_TIMESTAMP(6) FROM ({}) AS n "
            "ON DUPLICATE KEY UPDATE position = GREATEST("
            f"{t.cursors}.position, n.position), updated_at = UTC_TIMESTAMP(6)"
        )
        self._receivers: set[MySQLEventReceiver] = set()
        self._tails: weakref.WeakSet[MySQLTail] = weakref.WeakSet()  # closed ones go
        self._cursors = self._new_flusher()
        self._retiring: set[asyncio.Task[None]] = set()  # flushers of before a restart
        self._closed = False
        db.on_restart(self._restarted)

    def _new_flusher(self) -> CursorFlusher:
        """A flusher for the positions learned from now on: it writes only while the
        server has not restarted since (module docstring)."""
        restarts = self._db.restarts

        async def write(batch: Mapping[CursorKey, int]) -> None:
            await self._write_cursors(batch, restarts)

        return CursorFlusher(
            write,
            delay=self._db.options.ack_flush_interval,
            refresh=self._open_cursors,
            refresh_every=self._db.options.cursor_retention / 8,
            log=log,
            name="conveyor-mysql-cursor-flusher",
        )

    def _restarted(self) -> None:
        """The server restarted (called by the ``Database`` before the new server's answers
        are read): drop the unwritten positions, send every reader back (module
        docstring)."""
        if self._closed:
            return
        old, self._cursors = self._cursors, self._new_flusher()
        task = asyncio.get_running_loop().create_task(
            old.close(), name="conveyor-mysql-cursor-flusher-retired"
        )
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        for receiver in self._receivers:
            receiver._restarted()
        for tail in self._tails:
            tail._restarted()

    async def new_sender(self, topic: str) -> MySQLEventSender:
        self._check_open()
        return MySQLEventSender(self, topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> MySQLEventReceiver:
        self._check_open()
        stored, last = await self._cursor_of(topic, name)
        topic_log = self._hub.log(topic)
        topic_log.advance(0 if last is None else int(last))
        unsaved = self._cursors.unsaved(topic, name)
        if unsaved is not None:
            stored = max(int(stored or 0), unsaved)
        latest = topic_log.last if stream_from_latest else 0
        start = int(stored) if stored is not None else latest
        receiver = MySQLEventReceiver(self, topic, name, start, stored is not None, poll_interval)
        self._receivers.add(receiver)
        return receiver

    async def tail(self, topic: str) -> MySQLTail:
        """A tail of ``topic`` from its ``last_id`` now (``TailsTopics``): no cursor, no
        connection of its own; see ``MySQLTail``."""
        self._check_open()
        while True:  # (what was read as the server restarted may be gone)
            restarts = self._db.restarts
            rows = await self._db.fetch("opening a tail", self._last_sql, (topic,))
            if self._db.restarts == restarts:
                break
        topic_log = self._hub.log(topic)
        topic_log.advance(int(rows[0][0]) if rows else 0)
        tail = MySQLTail(self._db, self._hub, topic, topic_log.last, None)
        self._tails.add(tail)
        return tail

    async def _cursor_of(self, topic: str, name: str) -> tuple[int | None, int | None]:
        """The stored cursor of ``name`` on ``topic`` and the topic's last ID, from a read
        during which no server restart was seen."""
        while True:
            restarts = self._db.restarts
            rows = await self._db.fetch("opening a receiver", self._open_sql, (topic, name, topic))
            if self._db.restarts == restarts:
                stored, last = rows[0]
                return (
                    None if stored is None else int(stored),
                    None if last is None else int(last),
                )

    async def close(self) -> None:
        """Close every receiver and tail still open, write every dirty cursor (best
        effort) and stop polling if no other streamer here reads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for receiver in list(self._receivers):
            receiver._stop()
        for tail in list(self._tails):
            tail._stop()
        self._receivers.clear()
        self._tails.clear()
        await self._cursors.close()
        for task in list(self._retiring):
            with contextlib.suppress(Exception):
                await task
        await self._hub.stop_if_idle()

    def _check_open(self) -> None:
        if self._closed:
            raise AdapterError("the MySQL event streamer is closed")

    # ------------------------------------------------------------------ sending

    async def send_in(self, cur: Cursor, topic: str, events: Sequence[OutgoingEvent]) -> Appended:
        """Append ``events`` to ``topic`` inside the caller's transaction on ``cur``.

        They become visible when that transaction commits, together with the caller's own
        writes; until then other senders to ``topic`` wait (so keep the transaction short
        after this call, and append to several topics in sorted order, or two such
        transactions can deadlock). After the commit, pass the result to ``appended`` (it
        wakes this process's readers); if the transaction rolls back, drop it. Raises the
        driver's errors (the caller owns the transaction).
        """
        n = len(events)
        if not n:
            return Appended(topic, 0, 0, [])
        if not await cur.execute(self._take_sql, (n, topic)):  # a new topic: no row yet
            await cur.execute(self._take_new_sql, (topic, n, n))
        last = int(cur.lastrowid)
        base = last - n
        now = datetime.now(UTC)
        stamp = now.replace(tzinfo=None)
        args: list[object] = []
        for i, e in enumerate(events, 1):
            headers = _encode_headers(dict(e.headers))
            args += (topic, base + i, e.foreign_id, int(e.type), headers, stamp)
            args.append(_dedupe(e.headers))
        sql = self._insert_sql + ", ".join([_ROW] * n) + " ON DUPLICATE KEY UPDATE id = id"
        inserted = await cur.execute(sql, args)
        kept = [
            Event(base + i, e.foreign_id, int(e.type), dict(e.headers), now)
            for i, e in enumerate(events, 1)
        ]
        if inserted < n:  # copies of events already in the log were dropped
            await cur.execute(self._inserted_sql, (topic, base, last))
            ids = {int(row[0]) for row in await cur.fetchall()}
            kept = [event for event in kept if event.id in ids]
        return Appended(topic, base, last, kept)

    async def _send(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        appended = await self._db.transaction(
            f"sending to {topic!r}", lambda cur: self.send_in(cur, topic, events)
        )
        self.appended(appended)

    def appended(self, appended: Appended) -> None:
        """Tell this process's readers of a topic about events a committed transaction
        appended there (``send_in``): they take them without a query and wake at once."""
        if appended.last > appended.base:
            self._hub.log(appended.topic).cover(appended.base, appended.last, appended.events)
            self._hub.found()

    # ------------------------------------------------------------------ cursors

    def _open_cursors(self) -> Iterator[tuple[CursorKey, int]]:
        """The saved cursors of open receivers: rewritten now and then, so the pruner
        sees them alive."""
        for receiver in self._receivers:
            if receiver._saved and not receiver._resync_pending:
                yield (receiver.topic, receiver.name), receiver._acks.committed

    async def _write_cursors(self, batch: Mapping[CursorKey, int], restarts: int) -> None:
        """Store ``batch``, learned while ``Database.restarts`` was ``restarts``: if the server
        restarted since, drop it (its positions may be past events the crash undid)."""
        if self._db.restarts != restarts:
            return
        keys = sorted(batch)  # one order for every writer: no deadlock between them
        rows = " UNION ALL ".join(
            ["SELECT %s AS topic, %s AS name, %s AS position"]
            + ["SELECT %s, %s, %s"] * (len(keys) - 1)
        )
        args: list[object] = []
        for topic, name in keys:
            args += (topic, name, batch[(topic, name)])
        sql = self._save_sql.format(rows)

        async def work(conn: Connection) -> None:
            # Checked on the connection that writes: one made to a restarted server has
            # counted the restart before it is handed out.
            if self._db.restarts != restarts:
                return
            async with conn.cursor() as cur:
                await cur.execute(sql, args)

        await self._db.run("saving event cursors", work)

    def _forget(self, receiver: MySQLEventReceiver) -> None:
        self._receivers.discard(receiver)


class MySQLEventSender(EventSenderBase):
    """Appends to one topic of a ``MySQLEventStreamer`` (one transaction per call)."""

    def __init__(self, streamer: MySQLEventStreamer, topic: str) -> None:
        super().__init__(topic)
        self._streamer = streamer

    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        await self._streamer._send(self.topic, events)


class MySQLEventReceiver(TopicReader):
    """Reads one topic of a ``MySQLEventStreamer`` from the cursor stored under a name."""

    def __init__(
        self,
        streamer: MySQLEventStreamer,
        topic: str,
        name: str,
        start: int,
        saved: bool,
        poll_interval: float | None,
    ) -> None:
        super().__init__(streamer._db, streamer._hub, topic, start, poll_interval)
        self._streamer = streamer
        self.name = name
        self._start = start  # where it goes back to after a restart if it has no cursor
        self._acks = AckTracker(start)
        self._saved = saved  # whether a cursor row exists (or is on its way)
        self._restarts = 0
        self._handed: dict[int, Event] = {}
        """After a server restart: the events handed out since, not yet passed by the
        cursor, in ID order (an ack must be of one of them, not of an older event that had
        the same ID)."""

    def _restarted(self) -> None:
        self._restarts += 1
        self._handed = {}  # every ack of what was handed out so far is ignored
        super()._restarted()

    async def _resync(self) -> None:
        streamer = self._streamer
        stored, last = await streamer._cursor_of(self.topic, self.name)
        self._log.advance(0 if last is None else last)
        unsaved = streamer._cursors.unsaved(self.topic, self.name)  # marked since
        if unsaved is not None:
            stored = max(stored or 0, unsaved)
        start = self._start if stored is None else stored
        self._next = start
        self._acks = AckTracker(start)
        self._saved = stored is not None
        self._handed = {}
        self._resync_pending = False

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        limit = max(1, max_events)
        while True:
            if self._closed:
                raise AdapterError(f"receiver {self.name!r} is closed")
            generation, events = await self._look(limit)
            if self._closed:
                raise AdapterError(f"receiver {self.name!r} is closed")
            if events:
                self._acks.hand_out(event.id for event in events)
                if self._restarts:
                    self._handed.update((event.id, event) for event in events)
                return events
            await self._wait(generation)

    def pending(self) -> int:
        """``1`` while this process knows (or cannot rule out) events this receiver has not
        handed out, else ``0`` (the ``ReportsPending`` capability).

        Known: events this process sent or read past our position, and those another
        process committed as far as the last poll saw (polls come every ``poll_min`` to
        the cap, see the module docstring).
        """
        if self._closed:
            return 0
        if self._resync_pending:  # going back after a server restart
            return 1
        return 1 if self._log.has_after(self._next) else 0

    async def ack(self, event: Event) -> None:
        """Acknowledge ``event``; raises ``AdapterError`` if it was never handed out. After
        a server restart an event handed out before it is ignored (see the module
        docstring), as is any event not handed out since."""
        if self._restarts:
            handed = self._handed.get(event.id)
            if handed is None or not (handed is event or handed == event):
                return
        try:
            moved = self._acks.ack(event.id)
        except NotHandedOut:
            raise AdapterError(
                f"event {event.id} was not handed out by receiver {self.name!r}"
            ) from None
        if moved:
            self._saved = True
            committed = self._acks.committed
            self._streamer._cursors.mark(self.topic, self.name, committed)
            handed_out = self._handed
            while handed_out:
                first = next(iter(handed_out))
                if first > committed:
                    break
                del handed_out[first]

    async def close(self) -> None:
        """Stop receiving and write this receiver's cursor (if it moved). Idempotent.

        If the cursor cannot be written now, the streamer keeps retrying in the background.
        """
        if not self._stop():  # a recv waiting in this receiver returns
            return
        self._streamer._forget(self)
        with contextlib.suppress(AdapterError):
            await self._streamer._cursors.flush(only=(self.topic, self.name))
