"""``PostgresEventStreamer``: an event log in a table, cursors per receiver name, and
wake-ups by LISTEN/NOTIFY.

Gap-free reading. A reader that keeps ``id > cursor`` loses an event when a lower ID
commits after a higher one. Here IDs are per topic and come from the topic's row in the
``topics`` table, which a sender updates in the same statement as its insert: the row
stays locked until the sender commits, so the next sender to the topic waits and gets
higher IDs only after the lower ones are visible. A topic's IDs therefore become visible
in order, and ``id > cursor`` never skips one. The price is that senders to *one* topic
commit one after another; different topics do not wait for each other. In the engine a
topic's writers are few: the outbox relay (one process at a time), or, with the record
store's direct events, the consumers of the statuses that lead to it (and triggers for
the first status), whose batches share one commit each. Readers are never held back by
unrelated transactions (unlike reading below ``pg_snapshot_xmin``, which waits for every
older transaction in the database, including long ones that never touch the log, and
whose order is not the order of the IDs that receivers and sharding see).

At most once per write. Engine events carry the run ID and record version of the write
that produced them; a second copy of one (the relay sends again after a crash or a
hand-over between sending and deleting its outbox rows) is dropped by a unique index, so
consumers do not run a step twice for one write at the same time. (IDs then have a gap.)

Wake-ups. A send notifies ``e:<topic>`` on commit if another process listens (see
``Database``); receivers of the topic there wake and read. Receivers in the sending
process are woken directly and take the events from ``SentCache`` without a query.
While the LISTEN connection is down receivers poll.

Cursors. ``ack`` is local and cheap: the position advances over an unbroken run of acks
and is written by a background flusher at most every ``ack_flush_interval`` (all dirty
cursors of the process in one statement), and by ``close``. A crash loses at most that
interval's cursor progress, which means redelivery (at least once), never loss.
Receivers that never ack (``Workflow.wait`` uses such) write nothing.

Tails (``tail``, the ``TailsTopics`` capability) read like receivers from the topic's
``last_id`` at their opening, with no cursor and no connection of their own; see
``PostgresTail`` for their gaps.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence

import msgspec

from ..._errors import AdapterError
from ..._event import Event, Header
from ..._kit._acks import AckTracker, NotHandedOut
from ..._kit._flusher import CursorFlusher, CursorKey
from ..._kit._sender import EventSenderBase
from ..._protocols import Delivery, OutgoingEvent
from ._database import Connection, Database
from ._sent_cache import SentCache
from ._tail import PostgresTail, TopicReader

__all__ = ["PostgresEventReceiver", "PostgresEventSender", "PostgresEventStreamer"]

log = logging.getLogger("conveyor.adapters.postgres")

_encode_headers = msgspec.json.Encoder().encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


def _dedupe(headers: Mapping[str, str]) -> str | None:
    """The identity of an engine event (one per record write), else ``None``."""
    run_id = headers.get(Header.RUN_ID)
    version = headers.get(Header.RECORD_VERSION)
    return None if run_id is None or version is None else f"{run_id}:{version}"


class PostgresEventStreamer:
    """``EventStreamer`` on PostgreSQL tables (see the module docstring)."""

    delivery: Delivery = Delivery.CURSOR

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.tables

        def append(notify_if: str) -> str:
            return f"""
appended AS (
    INSERT INTO {t.events} (topic, id, foreign_id, type, headers, dedupe)
    SELECT $1, counter.base + e.ord, e.foreign_id, e.type, e.headers, e.dedupe
    FROM counter, unnest($3::text[], $4::bigint[], $5::bytea[], $6::text[])
        WITH ORDINALITY AS e(foreign_id, type, headers, dedupe, ord)
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT (SELECT base FROM counter) AS base, now() AS created_at,
    (SELECT array_agg(id) FROM appended) AS ids,
    (SELECT count(pg_notify({t.channel!r}, 'e:' || $1)) FROM counter
     WHERE {notify_if} AND EXISTS (SELECT 1 FROM appended)) AS notified
"""

        # Updating the topic's counter row locks it until commit (see the module docstring).
        # A plain UPDATE is cheaper than an upsert, which is needed only for a new topic.
        update = f"""
WITH counter AS (
    UPDATE {t.topics} SET last_id = last_id + $2::bigint WHERE topic = $1
    RETURNING last_id - $2::bigint AS base
),"""
        upsert = f"""
WITH counter AS (
    INSERT INTO {t.topics} AS t (topic, last_id) VALUES ($1, $2::bigint)
    ON CONFLICT (topic) DO UPDATE SET last_id = t.last_id + $2::bigint
    RETURNING last_id - $2::bigint AS base
),"""
        # Our own sends notify only if another process listens (receivers here are woken
        # directly). Sends in a caller's transaction always notify: it may commit long
        # after another process started listening.
        others = db.others_listen_sql.replace("$_", "$7")
        self._send_sql = update + append(others)
        self._send_new_sql = upsert + append(others)
        self._send_in_sql = update + append("true")
        self._send_in_new_sql = upsert + append("true")
        self._read_sql = (
            f"SELECT id, foreign_id, type, headers, created_at FROM {t.events} "
            "WHERE topic = $1 AND id > $2 ORDER BY id LIMIT $3"
        )
        self._last_sql = f"SELECT last_id FROM {t.topics} WHERE topic = $1"
        self._open_sql = (
            f"SELECT (SELECT position FROM {t.cursors} WHERE topic = $1 AND name = $2) "
            f"AS position, (SELECT last_id FROM {t.topics} WHERE topic = $1) AS last_id"
        )
        self._save_sql = (
            f"INSERT INTO {t.cursors} AS c (topic, name, position) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) "
            "ON CONFLICT (topic, name) DO UPDATE "
            "SET position = greatest(c.position, excluded.position), updated_at = now()"
        )
        self._sent: dict[str, SentCache] = {}
        self._receivers: set[PostgresEventReceiver] = set()
        self._cursors = CursorFlusher(
            self._write_cursors,
            delay=db.options.ack_flush_interval,
            refresh=self._open_cursors,
            refresh_every=db.options.cursor_retention / 8,
            log=log,
            name="conveyor-postgres-cursor-flusher",
        )
        self._closed = False

    async def new_sender(self, topic: str) -> PostgresEventSender:
        return PostgresEventSender(self, topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> PostgresEventReceiver:
        # Read before the query: a receiver that opens at the topic's end starts caught up
        # as of these counts (pending() is 0 until a notification or a send follows).
        generation = self._db.signal(f"e:{topic}").generation
        sends = self._cache(topic).sends
        row = await self._db.fetchrow("opening a receiver", self._open_sql, topic, name)
        stored = None if row is None else row["position"]
        last = 0 if row is None or row["last_id"] is None else int(row["last_id"])
        unsaved = self._cursors.unsaved(topic, name)
        if unsaved is not None:
            stored = max(stored or 0, unsaved)
        start = int(stored) if stored is not None else (last if stream_from_latest else 0)
        receiver = PostgresEventReceiver(
            self, topic, name, start, stored is not None, poll_interval
        )
        if start >= last:
            receiver._caught_up = (generation, sends)
        self._receivers.add(receiver)
        return receiver

    async def tail(self, topic: str) -> PostgresTail:
        """A tail of ``topic`` from its ``last_id`` now (``TailsTopics``): no cursor, no
        connection of its own; see ``PostgresTail``."""
        db = self._db
        # Read before the query, as for a receiver opening at the end (and the signal
        # exists from now on, so the listener's loss and return wake the tail).
        listener = (db.listener_connections, db.listening)
        generation = db.signal(f"e:{topic}").generation
        cache = self._cache(topic)
        sends = cache.sends
        row = await db.fetchrow("opening a tail", self._last_sql, topic)
        last = 0 if row is None else int(row["last_id"])
        return PostgresTail(
            db,
            topic,
            self._read_sql,
            cache,
            last,
            caught_up=(generation, sends),
            listener=listener,
        )

    async def close(self) -> None:
        """Write every dirty cursor (best effort) and stop the flusher. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._cursors.close()

    # ------------------------------------------------------------------ sending

    async def send_in(self, conn: Connection, topic: str, events: Sequence[OutgoingEvent]) -> None:
        """Append ``events`` to ``topic`` inside the caller's transaction on ``conn``.

        They become visible (and receivers are notified) when that transaction commits,
        together with the caller's own writes; until then other senders to ``topic``
        wait. Raises the driver's errors (the caller owns the transaction).
        """
        if events:
            args = self._send_args(topic, events)
            if await conn.fetchval(self._send_in_sql, *args) is None:
                await conn.execute(self._send_in_new_sql, *args)

    def _send_args(self, topic: str, events: Sequence[OutgoingEvent]) -> tuple[object, ...]:
        fids = [e.foreign_id for e in events]
        types = [int(e.type) for e in events]
        headers = [_encode_headers(dict(e.headers)) for e in events]
        return topic, len(events), fids, types, headers, [_dedupe(e.headers) for e in events]

    async def _send(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        args = (*self._send_args(topic, events), self._db.member_id)
        rows = await self._db.write(f"sending to {topic!r}", self._send_sql, *args)
        if rows[0]["base"] is None:  # a new topic: no counter row to update yet
            rows = await self._db.write(f"sending to {topic!r}", self._send_new_sql, *args)
        row = rows[0]
        base, created_at = row["base"], row["created_at"]
        appended = set(row["ids"] or ())
        self.appended(
            topic,
            [
                Event(base + i, e.foreign_id, int(e.type), dict(e.headers), created_at)
                for i, e in enumerate(events, 1)
                if base + i in appended
            ],
        )

    def appended(self, topic: str, events: list[Event]) -> None:
        """Tell this process's receivers of ``topic`` about events it just committed there
        (in ID order): they take them without a query and are woken directly."""
        self._cache(topic).add(events)
        self._db.fire(f"e:{topic}")

    def _cache(self, topic: str) -> SentCache:
        cache = self._sent.get(topic)
        if cache is None:
            cache = self._sent[topic] = SentCache()
        return cache

    # ------------------------------------------------------------------ cursors

    def _open_cursors(self) -> Iterator[tuple[CursorKey, int]]:
        """The saved cursors of open receivers: rewritten now and then, so the pruner
        sees them alive."""
        for receiver in self._receivers:
            if receiver._saved:
                yield (receiver.topic, receiver.name), receiver._acks.committed

    async def _write_cursors(self, batch: Mapping[CursorKey, int]) -> None:
        keys = list(batch)
        await self._db.write(
            "saving event cursors",
            self._save_sql,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [batch[k] for k in keys],
        )


class PostgresEventSender(EventSenderBase):
    """Appends to one topic of a ``PostgresEventStreamer`` (one statement per call)."""

    def __init__(self, streamer: PostgresEventStreamer, topic: str) -> None:
        super().__init__(topic)
        self._streamer = streamer

    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        await self._streamer._send(self.topic, events)


class PostgresEventReceiver(TopicReader):
    """Reads one topic of a ``PostgresEventStreamer`` from the cursor stored under a name."""

    def __init__(
        self,
        streamer: PostgresEventStreamer,
        topic: str,
        name: str,
        start: int,
        saved: bool,
        poll_interval: float | None,
    ) -> None:
        super().__init__(
            streamer._db, topic, streamer._read_sql, streamer._cache(topic), start, poll_interval
        )
        self._streamer = streamer
        self.name = name
        self._acks = AckTracker(start)
        self._saved = saved  # whether a cursor row exists (or is on its way)

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
                return events
            await self._wait(generation)

    def pending(self) -> int:
        """``1`` while this process knows (or cannot rule out) events this receiver has not
        handed out, else ``0`` (the ``ReportsPending`` capability).

        Known: events this process sent past our position, a notification since our last
        read reached the end, or no such read yet (or the listener is down).
        """
        if self._closed:
            return 0
        if self._cache.last > self._next:
            return 1
        return 0 if self._up_to_date(self._signal.generation, self._cache.sends) else 1

    async def ack(self, event: Event) -> None:
        try:
            moved = self._acks.ack(event.id)
        except NotHandedOut:
            raise AdapterError(
                f"event {event.id} was not handed out by receiver {self.name!r}"
            ) from None
        if moved:
            self._saved = True
            self._streamer._cursors.mark(self.topic, self.name, self._acks.committed)

    async def close(self) -> None:
        """Stop receiving and write this receiver's cursor (if it moved). Idempotent.

        If the cursor cannot be written now, the streamer keeps retrying in the background.
        """
        if not self._stop():  # a recv waiting in this receiver returns
            return
        self._streamer._receivers.discard(self)
        with contextlib.suppress(AdapterError):
            await self._streamer._cursors.flush(only=(self.topic, self.name))
