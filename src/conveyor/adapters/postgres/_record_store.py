"""``PostgresRecordStore``: records and their events in one transaction, compare-and-set;
failed attempts beside them, and each run's history.

A thin class over its parts, one module each:

- ``_batch_writes``: a batch of writes and their outbox rows as one statement (a single
  write as a plain one);
- ``_direct_writes``: with ``events=streamer`` (what ``connect`` builds), each write
  appends its event to the event log itself instead of adding an outbox row;
- ``_savepoints``: the write-by-write fallback for batches one statement cannot take;
- ``_record_reads``: lookups (concurrent ones merged into one query), ``latest``, ``list``;
- ``_listing``: runs by a filter, a page at a time by keyset (``ListsRuns``);
- ``_definitions``: the definitions running workflows registered (``KeepsDefinitions``);
- ``_settings``: where the installation's events go (``PinsEventLocation``);
- ``_outbox_cache``: what this process knows of each outbox, so the relay running here
  lists it without a query and writes skip the NOTIFY;
- ``_outbox_deletes``: relayed events deleted from the table in batches, shortly after;
- ``_failures``: failed attempts kept only while the run is at their version, and
  history reads (every write statement inserts its history row, see ``_record_sql``).

Single ``store`` calls that arrive while one is being written (concurrent triggers) are
written together next, as one batch (group commit, ``Coalescer``).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from ..._capabilities import DefinitionRecord, Failure, HistoryEntry, RunPage, RunQuery
from ..._errors import WorkflowError
from ..._event import OutboxEvent
from ..._ids import check_foreign_id, invalid_foreign_id
from ..._protocols import Order, RecordFilter, RecordWrite
from ..._record import Record
from ._batch_writes import OutboxWrites
from ._coalesce import Coalescer
from ._database import Database
from ._definitions import Definitions
from ._direct_writes import DirectWrites
from ._failures import Failures
from ._listing import RunListing
from ._outbox_cache import OutboxCache
from ._outbox_deletes import DelayedDeletes
from ._record_reads import RecordReads
from ._settings import Settings
from ._streamer import PostgresEventStreamer

__all__ = ["PostgresRecordStore", "PostgresRecordStoreWithoutHistory"]


class _PostgresRecordStoreBase:
    """``RecordStore`` on PostgreSQL (see the module docstring for how writes work).

    Build it on an open ``Database`` (``open_backend`` does). Timestamps are the records'
    own, stored as ``timestamptz`` (exact to the microsecond). Failed attempts are kept
    beside the runs (``RecordsFailures``); a write to DataDeleted empties the run's
    failure messages in its own statement.
    """

    _keep_history: ClassVar[bool] = True

    def __init__(self, db: Database, *, events: PostgresEventStreamer | None = None) -> None:
        self._events = events
        self._cache = OutboxCache(db)
        self._deletes = DelayedDeletes(db)
        self._reads = RecordReads(db)
        self._listing = RunListing(db)
        self._definitions = Definitions(db)
        self._settings = Settings(db)
        self._failures = Failures(db)
        history = self._keep_history
        self._direct = DirectWrites(db, events, history=history) if events is not None else None
        self._outbox = OutboxWrites(db, self._cache, history=history)
        self._writes = Coalescer(self.store_many, "conveyor-postgres-writes", in_flight=1)
        self._closed = False

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
        if write.expected_version == 0:
            check_foreign_id(write.record.foreign_id)
        outcome = await self._writes.submit(write)
        if outcome is not None:
            raise outcome

    async def store_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        if not writes:
            return []
        refused = [
            invalid_foreign_id(w.record.foreign_id) if w.expected_version == 0 else None
            for w in writes
        ]
        if all(r is None for r in refused):
            return await self._write(writes)
        valid = [w for w, r in zip(writes, refused, strict=True) if r is None]
        outcomes = iter(await self._write(valid) if valid else ())
        return [r if r is not None else next(outcomes) for r in refused]

    async def _write(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        if self._direct is not None:
            return await self._direct.store(writes)
        return await self._outbox.store(writes)

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
        (``KeepsDefinitions``): one statement, retried after a concurrent one."""
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
        (``PinsEventLocation``): one statement, atomic against concurrent pins."""
        return await self._settings.pin_event_location(location)

    async def repin_event_location(self, location: str) -> None:
        """Record ``location`` whatever was recorded (``PinsEventLocation``)."""
        await self._settings.repin_event_location(location)

    # ------------------------------------------------------------------ failures

    async def record_failure(self, failure: Failure) -> bool:
        """Keep ``failure`` if the run is still at its version (``RecordsFailures``): one
        statement, the record untouched."""
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
        """Up to ``limit`` outbox events, oldest first (often without a query: see
        ``OutboxCache.list``)."""
        return await self._cache.list(workflow_name, limit, self._deletes.ids)

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        """Forget relayed events: at once for this store's lists, in the table within
        ``DelayedDeletes.DELAY`` seconds (several relay batches in one statement)."""
        if not ids:
            return
        self._cache.relayed(ids)
        await self._deletes.add(ids)

    async def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Wait for a write's notification; at once for a write since the last list."""
        await self._cache.wait(workflow_name, timeout)

    async def flush(self) -> None:
        """Delete the relayed events from the table now. Raises ``AdapterError``."""
        await self._deletes.flush()

    async def close(self) -> None:
        """Delete what was relayed (best effort) and stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._writes.close()
        await self._reads.close()
        await self._deletes.close()


class PostgresRecordStore(_PostgresRecordStoreBase):
    """The PostgreSQL record store (see ``_PostgresRecordStoreBase``' docstring, shown by
    ``help``) that also keeps every version's status, run state and reason
    (``KeepsHistory``): each write statement inserts its history rows."""

    _keep_history: ClassVar[bool] = True

    async def history(self, run_id: str) -> Sequence[HistoryEntry]:
        """Every applied write of the run, oldest first, with its version's failures (one
        query)."""
        return await self._failures.history(run_id)


class PostgresRecordStoreWithoutHistory(_PostgresRecordStoreBase):
    """``PostgresRecordStore`` without history (``history=false``): write statements
    insert no history rows, and the store does not claim ``KeepsHistory``. Failures are
    still recorded."""

    _keep_history: ClassVar[bool] = False
