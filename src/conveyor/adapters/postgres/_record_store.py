"""``PostgresRecordStore``: records and their outbox in one transaction, compare-and-set.

A batch of writes is one statement (so one round trip and one commit): a data-modifying
CTE inserts the new runs with ``ON CONFLICT DO NOTHING`` (the primary key and the partial
unique index of active runs both count as conflicts), updates the others with
``WHERE run_id = ... AND version = <expected>``, inserts the outbox rows of exactly the
writes that applied, and reports which those were. No failed write raises inside the
transaction, so none aborts the others; the outcome of a write that did not apply is
told apart afterwards (an existing run ID is a ``VersionConflict``, else the foreign ID
has an active run: ``WorkflowInProgress``). Batches that touch one run twice, or an update
that would make a second run active, fall back to one savepoint per write. A single
write (a trigger, or a step alone in its batch) uses a plain statement without arrays.

Concurrent calls are merged (``Coalescer``): lookups made in one event-loop turn (a step
consumer looks up a whole batch of runs at once) are one ``run_id = ANY($1)`` query, and
single ``store`` calls that arrive while one is being written (concurrent triggers) are
written together next, as one batch (group commit).

Direct events (``PostgresRecordStore(db, events=streamer)``, what ``connect`` builds):
when the event log lives in the same database, a write appends its event to the log in
its own statement instead of adding an outbox row (``direct_sql``): one commit per write
instead of three statements (write, relay's send, outbox delete), and a run moves from
one process to another in one hop instead of two (write, relay, consumer). The event is
exactly the one the relay would have sent (same topic, type, headers and foreign ID);
the outbox stays empty and the relay idles. This process's receivers are handed the
events at once (``PostgresEventStreamer.appended``).

The outbox relay of a workflow runs in one process at a time. When it runs in this one,
the store serves its lists from the events this process wrote (no query; see
``_Outbox``), writes skip the NOTIFY (the relay is woken directly), and relayed events
are deleted from the table in batches shortly after ``delete_outbox_events``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence

import asyncpg

from ..._errors import (
    AdapterError,
    RecordNotFound,
    VersionConflict,
    WorkflowError,
    WorkflowInProgress,
)
from ..._event import Event, OutboxEvent
from ..._protocols import Order, RecordFilter, RecordWrite
from ..._record import Record
from ._coalesce import Coalescer
from ._database import Connection, Database
from ._record_sql import (
    COLUMNS,
    batch_args,
    batch_sql,
    decode_headers,
    direct_args,
    direct_one_args,
    direct_one_sql,
    direct_sql,
    entangled,
    insert_args,
    insert_sql,
    record,
    update_args,
    update_sql,
)
from ._streamer import PostgresEventStreamer

__all__ = ["PostgresRecordStore"]

log = logging.getLogger("conveyor.adapters.postgres")


class _Outbox:
    """What this process knows about one workflow's outbox.

    Every write notifies the workflow's signal once (here directly, elsewhere through
    NOTIFY). If, since a list that returned every row, each notification was one of this
    process's own writes and every row that list returned has been deleted, the outbox
    holds exactly the events those writes added: ``pending``. The relay (which in a
    one-process deployment runs here) then needs no query.
    """

    __slots__ = (
        "base",
        "base_at",
        "listed_at",
        "pending",
        "seen",
        "unrelayed",
        "waiting",
        "writes",
    )

    LIMIT = 4096
    FRESH = 1.0
    """Seconds a complete list is trusted for: then the table is read again regardless."""

    def __init__(self) -> None:
        self.pending: dict[str, OutboxEvent] = {}
        self.writes = 0  # this process's writes (each fired the signal once)
        self.base: tuple[int, int] | None = None  # (generation, writes) of a complete list
        self.base_at = 0.0  # when that list began (monotonic)
        self.unrelayed: set[str] = set()  # returned by that list, not deleted since
        self.seen = -1  # the generation when the last list began (for wait_for_outbox)
        self.listed_at = -1e9  # when the relay here last listed (monotonic)
        self.waiting = 0  # relays waiting here in wait_for_outbox

    def wrote(self, events: list[OutboxEvent]) -> None:
        self.writes += 1
        if len(self.pending) + len(events) > self.LIMIT:
            # Nobody lists here (the relay runs elsewhere): stop keeping them.
            self.pending.clear()
            self.base = None
            return
        for event in events:
            self.pending[event.id] = event

    def known(self, generation: int, listening: bool, now: float) -> bool:
        base = self.base
        return (
            base is not None
            and listening
            and not self.unrelayed
            and generation - base[0] == self.writes - base[1]
            and now - self.base_at < self.FRESH
        )


class PostgresRecordStore:
    """``RecordStore`` on PostgreSQL (see the module docstring for how writes work).

    Build it on an open ``Database`` (``open_backend`` does). Timestamps are the records'
    own, stored as ``timestamptz`` (exact to the microsecond).
    """

    def __init__(self, db: Database, *, events: PostgresEventStreamer | None = None) -> None:
        self._db = db
        t = db.tables
        self._t = t
        others = db.others_listen_sql
        self._events = events
        self._direct = direct_sql(t.records, t.topics, t.events, t.channel, others)
        self._direct_insert = direct_one_sql(
            t.records, t.topics, t.events, t.channel, others, new=True
        )
        self._direct_update = direct_one_sql(
            t.records, t.topics, t.events, t.channel, others, new=False
        )
        self._batch = batch_sql(t.records, t.outbox, t.channel, others)
        self._insert = insert_sql(t.records, t.outbox, t.channel, others)
        self._update = update_sql(t.records, t.outbox, t.channel, others)
        self._lookups = Coalescer(self._lookup_batch, "conveyor-postgres-lookups")
        self._writes = Coalescer(self.store_many, "conveyor-postgres-writes", in_flight=1)
        self._outbox: dict[str, _Outbox] = {}
        self._deleted: set[str] = set()  # relayed, not yet deleted from the table
        self._deleter: asyncio.Task[None] | None = None

    @property
    def publishes_to(self) -> PostgresEventStreamer | None:
        """The streamer whose log writes append their events to (``events=``), else
        ``None`` (the outbox is kept): a workflow on this store and that streamer runs no
        outbox relay (the ``PublishesEvents`` capability)."""
        return self._events

    # ------------------------------------------------------------------ writes

    async def store(self, write: RecordWrite) -> None:
        """Store one write. A lone write goes at once; writes that arrive while one is in
        flight (concurrent triggers) share the next statement and commit, each with its own
        compare-and-set outcome."""
        outcome = await self._writes.submit(write)
        if outcome is not None:
            raise outcome

    async def store_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        if not writes:
            return []
        if self._events is not None:
            return await self._store_direct(writes, self._events)
        outcomes = None if entangled(writes) else await self._store_batch(writes)
        if outcomes is None:
            outcomes = await self._store_one_by_one(writes)
        written: dict[str, builtins.list[OutboxEvent]] = {}
        for write, outcome in zip(writes, outcomes, strict=True):
            if outcome is None:
                written.setdefault(write.record.workflow_name, []).append(write.outbox)
        for name, events in written.items():
            self._state(name).wrote(events)
            self._db.fire(f"o:{name}")
        return outcomes

    async def _store_batch(
        self, writes: Sequence[RecordWrite]
    ) -> builtins.list[WorkflowError | None] | None:
        """One statement; ``None`` if an update would make a second run active (not a valid
        transition, but a store cannot assume that): then the batch goes write by write."""
        me = self._db.member_id
        single = writes[0] if len(writes) == 1 else None

        async def work(conn: Connection) -> builtins.list[asyncpg.Record] | None:
            try:
                if single is None:
                    return await conn.fetch(
                        self._batch, *batch_args(writes), self._notified(writes), me
                    )
                notify = self._must_notify(single.record.workflow_name)
                if single.expected_version == 0:
                    row = await conn.fetchrow(self._insert, *insert_args(single), notify, me)
                else:
                    row = await conn.fetchrow(self._update, *update_args(single), notify, me)
                return [row] if row is not None else []
            except asyncpg.UniqueViolationError:
                return None

        rows = await self._db.run("storing records", work)
        if rows is None:
            return None
        if single is not None:
            (row,) = rows
            return [None if row[0] else self._failure(single, row[1])]
        outcomes: builtins.list[WorkflowError | None] = [None] * len(writes)
        for row in rows:
            ord_, applied, stored_version = row[0], row[1], row[2]
            if not applied:
                outcomes[ord_] = self._failure(writes[ord_], stored_version)
        return outcomes

    async def _store_direct(
        self, writes: Sequence[RecordWrite], streamer: PostgresEventStreamer
    ) -> builtins.list[WorkflowError | None]:
        """Write records and append their events to the log in one transaction (see
        ``direct_sql``); a batch that one statement cannot take goes write by write."""
        me = self._db.member_id

        async def one(conn: Connection, write: RecordWrite) -> asyncpg.Record:
            sql = self._direct_insert if write.expected_version == 0 else self._direct_update
            row: asyncpg.Record = (await conn.fetch(sql, *direct_one_args(write), me))[0]
            return row

        async def batch(conn: Connection) -> builtins.list[asyncpg.Record] | None:
            try:
                if len(writes) == 1:
                    return [await one(conn, writes[0])]
                return await conn.fetch(self._direct, *direct_args(writes), me)
            except asyncpg.UniqueViolationError:
                return None

        async def one_by_one(conn: Connection) -> builtins.list[asyncpg.Record | None]:
            rows: builtins.list[asyncpg.Record | None] = []
            async with conn.transaction():
                for write in writes:
                    try:
                        async with conn.transaction():  # a savepoint
                            row = await one(conn, write)
                    except asyncpg.UniqueViolationError:
                        row = None
                    rows.append(row)
            return rows

        rows: Sequence[asyncpg.Record | None] | None = None
        if not entangled(writes):
            rows = await self._db.run("storing records", batch)
        if rows is None:
            rows = await self._db.run("storing records", one_by_one)
        outcomes: builtins.list[WorkflowError | None] = []
        by_topic: dict[str, builtins.list[Event]] = {}
        for write, row in zip(writes, rows, strict=True):
            if row is None:
                record = write.record
                outcomes.append(WorkflowInProgress(record.workflow_name, record.foreign_id))
            elif not row[1]:
                outcomes.append(self._failure(write, row[2]))
            else:
                outcomes.append(None)
                o = write.outbox
                event = Event(row[3], o.run_id, int(o.type), dict(o.headers), row[4])
                by_topic.setdefault(o.topic, []).append(event)
        for topic, events in by_topic.items():
            events.sort(key=lambda e: e.id)
            streamer.appended(topic, events)
        return outcomes

    def _must_notify(self, workflow_name: str) -> bool:
        """Whether a write must NOTIFY (a tenth of a millisecond of server time each).

        Only the workflow's relay waits for these notifications, and it runs in one
        process at a time (it holds a role). While it runs here, the write's local signal
        wakes it and nobody else needs the NOTIFY. "Runs here" is: waiting in
        ``wait_for_outbox`` now, or listed within the last ``_RELAY_ACTIVE`` seconds. A
        relay that takes over elsewhere within that tail misses those notifications and
        finds the writes at its next poll (``OutboxOptions.polling_frequency``) or
        resynchronisation (``_Outbox.FRESH``).
        """
        state = self._outbox.get(workflow_name)
        if state is None:
            return True
        return not (state.waiting or time.monotonic() - state.listed_at < _RELAY_ACTIVE)

    def _notified(self, writes: Sequence[RecordWrite]) -> builtins.list[str]:
        """The workflows of ``writes`` whose writes must NOTIFY."""
        names = {w.record.workflow_name for w in writes}
        return [name for name in names if self._must_notify(name)]

    @staticmethod
    def _failure(write: RecordWrite, stored_version: int | None) -> WorkflowError:
        record = write.record
        if write.expected_version == 0 and stored_version is None:
            return WorkflowInProgress(record.workflow_name, record.foreign_id)
        return VersionConflict(record.run_id, write.expected_version, stored_version)

    async def _store_one_by_one(self, writes: Sequence[RecordWrite]) -> list[WorkflowError | None]:
        """Each write in its own savepoint, in order, all in one transaction."""
        outcomes: list[WorkflowError | None] = []

        async def work(conn: Connection) -> None:
            async with conn.transaction():
                for write in writes:
                    try:
                        async with conn.transaction():  # a savepoint
                            rows = await conn.fetch(
                                self._batch,
                                *batch_args((write,)),
                                self._notified((write,)),
                                self._db.member_id,
                            )
                    except asyncpg.UniqueViolationError:
                        record = write.record
                        outcomes.append(WorkflowInProgress(record.workflow_name, record.foreign_id))
                        continue
                    (row,) = rows
                    outcomes.append(None if row[1] else self._failure(write, row[2]))

        await self._db.run("storing records", work)
        return outcomes

    # ------------------------------------------------------------------ reads

    async def lookup(self, run_id: str) -> Record:
        """The record of ``run_id``. Lookups made in one event-loop turn (a step consumer
        looks up a whole batch at once) share one query."""
        record = await self._lookups.submit(run_id)
        if record is None:
            raise RecordNotFound(f"record not found: run_id={run_id}")
        return record

    async def _lookup_batch(self, run_ids: builtins.list[str]) -> builtins.list[Record | None]:
        found = await self._lookup_many(run_ids)
        return [found.get(run_id) for run_id in run_ids]

    async def _lookup_many(self, run_ids: builtins.list[str]) -> dict[str, Record]:
        rows = await self._db.fetch(
            "looking up records",
            f"SELECT {COLUMNS} FROM {self._t.records} WHERE run_id = ANY($1::text[])",
            run_ids,
        )
        return {row[2]: record(row) for row in rows}

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        row = await self._db.fetchrow(
            "reading the latest record",
            f"SELECT {COLUMNS} FROM {self._t.records} WHERE foreign_id = $2 "
            "AND workflow_name = $1 ORDER BY created_at DESC, seq DESC LIMIT 1",
            workflow_name,
            foreign_id,
        )
        if row is None:
            raise RecordNotFound(
                f"record not found: workflow={workflow_name!r} foreign_id={foreign_id!r}"
            )
        return record(row)

    async def list(
        self,
        workflow_name: str = "",
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = Order.ASC,
        filter: RecordFilter | None = None,
    ) -> Sequence[Record]:
        sql, args = self.list_query(workflow_name, offset, limit, order, filter)
        rows = await self._db.fetch("listing records", sql, *args)
        return [record(row) for row in rows]

    def list_query(
        self,
        workflow_name: str,
        offset: int,
        limit: int,
        order: Order,
        filter: RecordFilter | None,
    ) -> tuple[str, builtins.list[object]]:
        """The statement ``list`` runs, with its arguments (every shape has an index)."""
        if limit <= 0:
            limit = 25
        where: builtins.list[str] = []
        args: builtins.list[object] = []

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if workflow_name:
            where.append(f"workflow_name = {arg(workflow_name)}")
        if filter is not None:
            if filter.foreign_ids:
                fids = builtins.list(filter.foreign_ids)
                where.append(f"foreign_id = ANY({arg(fids)}::text[])")
            if filter.statuses:
                where.append(f"status = ANY({arg([int(s) for s in filter.statuses])}::bigint[])")
            if filter.run_states:
                states = [int(s) for s in filter.run_states]
                where.append(f"run_state = ANY({arg(states)}::smallint[])")
            if filter.created_after is not None:
                where.append(f"created_at > {arg(filter.created_after)}")
            if filter.created_before is not None:
                where.append(f"created_at < {arg(filter.created_before)}")
        direction = "DESC" if order is Order.DESC else "ASC"
        sql = (
            f"SELECT {COLUMNS} FROM {self._t.records}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY created_at {direction}, seq {direction}"
            + f" LIMIT {arg(limit)} OFFSET {arg(max(0, offset))}"
        )
        return sql, args

    # ------------------------------------------------------------------ outbox

    def _state(self, workflow_name: str) -> _Outbox:
        state = self._outbox.get(workflow_name)
        if state is None:
            state = self._outbox[workflow_name] = _Outbox()
        return state

    async def list_outbox_events(self, workflow_name: str, limit: int) -> Sequence[OutboxEvent]:
        """Up to ``limit`` outbox events, oldest first.

        Needs no query when this process knows the outbox's content (see ``_Outbox``):
        never while the LISTEN connection is down, when another process wrote since the
        last complete list, or when rows it returned were not deleted.
        """
        state = self._state(workflow_name)
        generation = self._db.signal(f"o:{workflow_name}").generation
        now = time.monotonic()
        state.seen = generation
        state.listed_at = now
        if state.known(generation, self._db.listening, now):
            return list(itertools.islice(state.pending.values(), max(0, limit)))
        writes = state.writes
        state.pending.clear()  # the query sees them (or later writes add them again)
        rows = await self._db.fetch(
            "listing outbox events",
            f"SELECT id, workflow_name, run_id, type, headers, created_at FROM {self._t.outbox} "
            "WHERE workflow_name = $1 AND NOT id = ANY($3::text[]) ORDER BY seq LIMIT $2",
            workflow_name,
            max(0, limit),
            list(self._deleted),
        )
        state.base = (generation, writes) if len(rows) < limit else None
        state.base_at = now
        state.unrelayed = {row[0] for row in rows}
        return [
            OutboxEvent(
                id=row[0],
                workflow_name=row[1],
                run_id=row[2],
                type=row[3],
                headers=decode_headers(row[4]),
                created_at=row[5],
            )
            for row in rows
        ]

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        """Forget relayed events: at once for this store's lists, in the table within
        ``_DELETE_DELAY`` seconds (several relay batches in one statement).

        Until then another process's relay (after a hand-over) may send them again, and
        a crash sends them again too; the event log drops such copies (see
        ``PostgresEventStreamer``), and delivery is at least once anyway.
        """
        if not ids:
            return
        self._deleted.update(ids)
        for state in self._outbox.values():
            state.unrelayed.difference_update(ids)
            for event_id in ids:
                state.pending.pop(event_id, None)
        if len(self._deleted) >= _DELETE_BATCH:
            await self.flush()
            return
        if self._deleter is None or self._deleter.done():
            self._deleter = asyncio.get_running_loop().create_task(
                self._delete_later(), name="conveyor-postgres-outbox-deleter"
            )

    async def _delete_later(self) -> None:
        failures = 0
        while self._deleted:
            await asyncio.sleep(_DELETE_DELAY * 2 ** min(failures, 8))
            try:
                await self.flush()
                failures = 0
            except AdapterError as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("cannot delete relayed outbox events (will retry): %s", exc)

    async def flush(self) -> None:
        """Delete the relayed events from the table now. Raises ``AdapterError``."""
        if not self._deleted:
            return
        ids = list(self._deleted)
        await self._db.write(
            "deleting outbox events",
            f"DELETE FROM {self._t.outbox} WHERE id = ANY($1::text[])",
            ids,
        )
        self._deleted.difference_update(ids)

    async def close(self) -> None:
        """Delete what was relayed (best effort) and stop. Idempotent."""
        await self._writes.close()
        await self._lookups.close()
        if self._deleter is not None:
            self._deleter.cancel()
            await asyncio.wait({self._deleter})
            self._deleter = None
        with contextlib.suppress(AdapterError):
            await self.flush()

    async def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Wait for a write's notification (this process's writes fire it directly).

        A write that happened since the last ``list_outbox_events`` of the workflow makes
        this return at once, so a relay that lists, finds nothing and then waits never
        sleeps through a write that landed in between.
        """
        signal = self._db.signal(f"o:{workflow_name}")
        state = self._state(workflow_name)
        state.waiting += 1
        try:
            await signal.wait(min(timeout, self._db.wait_timeout()), state.seen)
        finally:
            state.waiting -= 1
            state.listed_at = time.monotonic()


_DELETE_DELAY = 0.02
"""Seconds relayed outbox events wait to be deleted together."""
_DELETE_BATCH = 2000
"""Relayed outbox events that are deleted at once, without waiting."""
_RELAY_ACTIVE = 0.2
"""Seconds after its last list that a relay counts as running in this process."""
