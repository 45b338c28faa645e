"""``MySQLRecordStore``: records and their events in one transaction on MySQL or MariaDB,
with compare-and-set; failed attempts beside them, each run's history, the registered
definitions, and runs listed by index.

What is atomic: a write is one InnoDB transaction holding its record (inserted, or
updated by compare-and-set), its event and, unless the store keeps no history, its
history row (and, for a write to DataDeleted, the scrub of its failure messages). Either
all of it commits or none of it.

Where the event goes: built with ``events=streamer`` (what ``conveyor.connect`` builds),
the write appends it to that ``MySQLEventStreamer``'s log itself, in its own transaction
(``PublishesEvents``): no outbox row, no relay, and a run moves from one step to the next
in one hop (write, consumer) instead of two (write, relay, consumer); the streamer's
readers in this process are handed the events after the commit without a query.
Without a streamer the event is an outbox row, which the workflow's outbox relay moves
to whatever streamer it was built with.

Round trips: ``store_many`` is one transaction for the whole batch with an outcome per
write (``_record_writes``), sent as one multi-statement query, ``BEGIN`` to ``COMMIT``,
when every write applies (consecutive new runs are one multi-row ``INSERT``, consecutive
updates one multi-row ``UPDATE`` at their expected versions); when one does not, that
query stops before its ``COMMIT`` and the batch is written again statement by statement,
so a write that a version check or a unique index refuses fails alone and the others
commit together. Single ``store`` calls that arrive while one is being written
(concurrent triggers) are written together next, as one batch (group commit,
``GroupCommit``).

Compare-and-set: a new run (``expected_version == 0``) is an ``INSERT`` that the
``records_run_id`` unique index refuses when the run ID exists (``VersionConflict``);
any other write is ``UPDATE ... WHERE run_id = ? AND version = ?``, which applies only if
the stored version is still the expected one, and its row count says so (``0``: a
``VersionConflict`` with the version found).

One active run: the ``records`` table's generated column ``active_foreign_id`` is the
foreign ID while the run is Initiated, Running or Paused and NULL otherwise, and the
unique index ``records_one_active_run (workflow_name, active_foreign_id)`` allows any
number of NULLs but one active run per workflow and foreign ID: the schema refuses a
second one, from any process, on insert (a trigger) or update (a finished run revived),
as ``WorkflowInProgress``.

The modules:

- ``_record_writes``: the batch transaction, its outcomes and the events it appends;
- ``_record_reads``: lookups (concurrent ones merged into one query), ``latest``, ``list``;
- ``_listing``: runs by a filter, a page at a time by keyset (``ListsRuns``);
- ``_outbox``: outbox lists, deletes and the relay's wake-up (in-process at once, other
  processes' writes by adaptive polling);
- ``_failures``: failed attempts kept only while the run is at their version, and
  history reads;
- ``_definitions``: the definitions running workflows registered (``KeepsDefinitions``).

Where the installation's events go (``PinsEventLocation``) is a row of the ``settings``
table (migration 4), pinned by ``INSERT IGNORE`` and a read in one transaction.

Limits beyond the foreign ID's (``conveyor._ids``): workflow names, run IDs and outbox
IDs hold at most 255 UTF-8 bytes (a longer one fails its batch with ``AdapterError``).
"""

from __future__ import annotations

import asyncio
import builtins
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import ClassVar

from ..._capabilities import DefinitionRecord, Failure, HistoryEntry, RunPage, RunQuery
from ..._errors import AdapterError, WorkflowError
from ..._event import OutboxEvent
from ..._ids import check_foreign_id, invalid_foreign_id
from ..._protocols import Order, RecordFilter, RecordWrite
from ..._record import Record
from ._database import Cursor, Database
from ._definitions import Definitions
from ._errors import error_code, is_connection_error
from ._failures import Failures
from ._listing import RunListing
from ._outbox import Outbox
from ._record_reads import RecordReads
from ._record_writes import RecordWrites
from ._streamer import MySQLEventStreamer

__all__ = ["GroupCommit", "MySQLRecordStore", "MySQLRecordStoreWithoutHistory", "record_store"]

Outcome = WorkflowError | None
_EVENT_LOCATION = "event_location"
_GROUP_LIMIT = 1000
"""The most single writes one group commit takes (the rest go with the next)."""


class GroupCommit:
    """Single writes (``store``), written together while one is in flight.

    A write goes at once, in its caller's task, if none of this store's is in flight;
    the writes that arrive meanwhile are written next as one batch (one transaction,
    ``RecordWrites.store``, of up to ``_GROUP_LIMIT`` writes), each with its own outcome:
    concurrent triggers share a commit instead of queueing for one each. A batch that
    the server refused as a whole (a statement failed, so it rolled back and nothing of
    it applied) is written again one write at a time, so a write that cannot be stored
    fails alone; any other error (the connection died, perhaps after the commit) is
    every caller's. A caller that is cancelled neither cancels the others nor loses
    their outcomes (its own write may still be applied, as a cancelled statement's may
    be).
    """

    def __init__(self, write: Callable[[Sequence[RecordWrite]], Awaitable[list[Outcome]]]) -> None:
        self._write = write
        self._queued: list[tuple[RecordWrite, asyncio.Future[Outcome]]] = []
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, write: RecordWrite) -> Outcome:
        """Store ``write`` (now, or with the next batch); its outcome."""
        if not self._busy:  # nothing in flight, so nothing queued either
            self._busy = True
            try:
                (outcome,) = await self._write([write])
            finally:
                self._busy = False
                self._next()
            return outcome
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queued.append((write, fut))
        return await fut

    def _next(self) -> None:
        queued = [(w, f) for w, f in self._queued if not f.done()]
        batch, self._queued = queued[:_GROUP_LIMIT], queued[_GROUP_LIMIT:]
        if batch:
            self._busy = True
            task = asyncio.get_running_loop().create_task(
                self._run(batch), name="conveyor-mysql-writes"
            )
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, batch))

    async def _run(self, batch: list[tuple[RecordWrite, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await self._write([w for w, _ in batch])
        except AdapterError as exc:
            if len(batch) == 1 or not _refused(exc):
                _fail(batch, exc)
                return
            for w, fut in batch:  # each alone: the one at fault fails by itself
                try:
                    (alone,) = await self._write([w])
                except Exception as error:
                    _fail([(w, fut)], error)
                else:
                    if not fut.done():
                        fut.set_result(alone)
            return
        except Exception as exc:
            _fail(batch, exc)
            return
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            if not fut.done():
                fut.set_result(outcome)

    def _done(
        self, batch: list[tuple[RecordWrite, asyncio.Future[Outcome]]], task: asyncio.Task[None]
    ) -> None:
        self._tasks.discard(task)
        for _, fut in batch:  # the task was cancelled (the loop is closing)
            if not fut.done():
                fut.cancel()
        self._busy = False
        self._next()

    async def close(self) -> None:
        """Wait for the batches under way (their callers are owed an outcome)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


def _fail(batch: Sequence[tuple[RecordWrite, asyncio.Future[Outcome]]], exc: BaseException) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)


def _refused(exc: AdapterError) -> bool:
    """Whether the server refused a statement of the transaction (so it rolled back and
    nothing of it applied), rather than the connection failing."""
    cause = exc.__cause__
    return cause is not None and error_code(cause) is not None and not is_connection_error(cause)


class _MySQLRecordStoreBase:
    """``RecordStore`` on MySQL or MariaDB (see the module docstring for how writes work).

    Build it on an open ``Database``; with ``events=streamer`` (a streamer on the same
    database) each write appends its event to the streamer's log instead of the outbox
    (``PublishesEvents``). Timestamps are the records' own, stored as ``DATETIME(6)`` in
    UTC (exact to the microsecond). Failed attempts are kept beside the runs
    (``RecordsFailures``); a write to DataDeleted empties the run's failure messages in
    its own transaction. ``close`` leaves the database open (its owner closes it).
    """

    _keep_history: ClassVar[bool] = True

    def __init__(self, db: Database, *, events: MySQLEventStreamer | None = None) -> None:
        self._db = db
        self._events = events
        self._writes = RecordWrites(db, history=self._keep_history, events=events)
        self._group = GroupCommit(self._writes.store)
        self._reads = RecordReads(db)
        self._listing = RunListing(db)
        self._outbox = Outbox(db)
        self._failures = Failures(db)
        self._definitions = Definitions(db)
        settings = db.tables.settings
        self._pin = f"INSERT IGNORE INTO {settings} (`key`, value) VALUES (%s, %s)"
        self._pinned = f"SELECT value FROM {settings} WHERE `key` = %s"
        # REPLACE, as the failures' statement: no VALUES() in ON DUPLICATE KEY UPDATE.
        self._repin = f"REPLACE INTO {settings} (`key`, value) VALUES (%s, %s)"

    @property
    def publishes_to(self) -> MySQLEventStreamer | None:
        """The streamer whose log writes append their events to (``events=``), else
        ``None`` (the outbox is kept): a workflow on this store and that streamer runs no
        outbox relay (the ``PublishesEvents`` capability)."""
        return self._events

    # ------------------------------------------------------------------ writes

    async def store(self, write: RecordWrite) -> None:
        """Store one write: at once if no other is in flight, else together with the
        writes that arrive meanwhile (one transaction, an outcome each: group commit,
        ``GroupCommit``). Raises ``VersionConflict``, ``WorkflowInProgress``,
        ``InvalidForeignID`` or ``AdapterError``."""
        if write.expected_version == 0:
            check_foreign_id(write.record.foreign_id)
        outcome = await self._group.submit(write)
        if outcome is not None:
            raise outcome

    async def store_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        """Store ``writes`` in one transaction, in order, each with its own compare-and-set;
        a new run with a foreign ID no backend can store is refused alone
        (``InvalidForeignID``) before the transaction."""
        if not writes:
            return []
        refused = [
            invalid_foreign_id(w.record.foreign_id) if w.expected_version == 0 else None
            for w in writes
        ]
        if all(r is None for r in refused):
            return await self._writes.store(writes)
        valid = [w for w, r in zip(writes, refused, strict=True) if r is None]
        outcomes = iter(await self._writes.store(valid) if valid else ())
        return [r if r is not None else next(outcomes) for r in refused]

    # ------------------------------------------------------------------ reads

    async def lookup(self, run_id: str) -> Record:
        """The record of ``run_id``. Lookups made in one event-loop turn (a step consumer
        looks up a whole batch at once) share one query."""
        return await self._reads.lookup(run_id)

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        return await self._reads.latest(workflow_name, foreign_id)

    async def list(
        self,
        workflow_name: str = "",
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = Order.ASC,
        filter: RecordFilter | None = None,
    ) -> Sequence[Record]:
        return await self._reads.list(workflow_name, offset, limit, order, filter)

    def list_query(
        self,
        workflow_name: str,
        offset: int,
        limit: int,
        order: Order,
        filter: RecordFilter | None,
    ) -> tuple[str, builtins.list[object]]:
        """The statement ``list`` runs, with its arguments (every shape has an index)."""
        return self._reads.list_query(workflow_name, offset, limit, order, filter)

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        """Up to ``limit`` runs of ``query`` after ``cursor`` (``ListsRuns``), read in the
        order of one of the ``records_list_*`` indexes."""
        return await self._listing.list_runs(query, limit, cursor)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        """How many runs match ``query``, counting at most ``cap`` index entries."""
        return await self._listing.count_runs(query, cap)

    @property
    def listing(self) -> RunListing:
        """The statements ``list_runs`` and ``count_runs`` run (for plan checks)."""
        return self._listing

    # ------------------------------------------------------------------ definitions

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        """Keep ``document`` as a new version unless the latest has ``hash``
        (``KeepsDefinitions``); retried after a concurrent registration."""
        return await self._definitions.register(workflow_name, hash, document, at)

    async def definitions(self) -> Sequence[DefinitionRecord]:
        """The latest definition of every workflow, by workflow name."""
        return await self._definitions.definitions()

    async def definition_versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        """Every version of one workflow's definition, oldest first."""
        return await self._definitions.versions(workflow_name)

    # ------------------------------------------------------------------ event location

    async def pin_event_location(self, location: str) -> str:
        """Record ``location`` unless one is recorded, and return the recorded one
        (``PinsEventLocation``): one transaction, whose ``INSERT IGNORE`` waits for a
        concurrent first pin's commit and whose read (READ COMMITTED) then sees it."""

        async def work(cur: Cursor) -> str:
            await cur.execute(self._pin, (_EVENT_LOCATION, location))
            await cur.execute(self._pinned, (_EVENT_LOCATION,))
            rows = await cur.fetchall()
            if not rows:  # pragma: no cover - the row was inserted or found just now
                raise AdapterError("pinning the event location recorded no location")
            return str(rows[0][0])

        return await self._db.transaction("pinning the event location", work)

    async def repin_event_location(self, location: str) -> None:
        """Record ``location`` whatever was recorded (``PinsEventLocation``)."""
        await self._db.execute(
            "repinning the event location", self._repin, [_EVENT_LOCATION, location]
        )

    # ------------------------------------------------------------------ failures

    async def record_failure(self, failure: Failure) -> bool:
        """Keep ``failure`` if the run is still at its version (``RecordsFailures``): one
        transaction, the record untouched."""
        return await self._failures.record(failure)

    async def failures(self, run_id: str, version: int | None = None) -> Sequence[Failure]:
        """The run's failures by version and attempt (only ``version``'s if given)."""
        return await self._failures.failures(run_id, version)

    async def retries_due(
        self, workflow_name: str, process: str, limit: int = 1000
    ) -> Sequence[Failure]:
        """The latest failure of each retrying run ``process`` must retry, earliest due
        first (by the ``failures_due`` index)."""
        return await self._failures.retries_due(workflow_name, process, limit)

    # ------------------------------------------------------------------ outbox

    async def list_outbox_events(self, workflow_name: str, limit: int) -> Sequence[OutboxEvent]:
        """Up to ``limit`` outbox events, oldest first."""
        return await self._outbox.list(workflow_name, limit)

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        """Delete relayed events (unknown IDs are ignored)."""
        if ids:
            await self._outbox.delete(ids)

    async def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Wait for a write to the workflow's outbox: this process's at once, other
        processes' by adaptive polling (see ``_outbox``)."""
        await self._outbox.wait(workflow_name, timeout)

    async def close(self) -> None:
        """Wait for the writes and lookups under way. Idempotent; the database stays
        open."""
        await self._group.close()
        await self._reads.close()


class MySQLRecordStore(_MySQLRecordStoreBase):
    """The MySQL/MariaDB record store (see ``_MySQLRecordStoreBase``' docstring, shown by
    ``help``) that also keeps every version's status, run state and reason
    (``KeepsHistory``): each write transaction inserts its history rows."""

    _keep_history: ClassVar[bool] = True

    async def history(self, run_id: str) -> Sequence[HistoryEntry]:
        """Every applied write of the run, oldest first, with its version's failures (one
        query)."""
        return await self._failures.history(run_id)


class MySQLRecordStoreWithoutHistory(_MySQLRecordStoreBase):
    """``MySQLRecordStore`` without history (``history=False``): writes insert no
    history rows, and the store does not claim ``KeepsHistory``. Failures are still
    recorded."""

    _keep_history: ClassVar[bool] = False


def record_store(
    db: Database, *, events: MySQLEventStreamer | None = None
) -> MySQLRecordStore | MySQLRecordStoreWithoutHistory:
    """The record store the backend's options ask for: ``MySQLRecordStore``, or
    ``MySQLRecordStoreWithoutHistory`` with ``history=False``; publishing to ``events``
    if given."""
    if db.options.history:
        return MySQLRecordStore(db, events=events)
    return MySQLRecordStoreWithoutHistory(db, events=events)
