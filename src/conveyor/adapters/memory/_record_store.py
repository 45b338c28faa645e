"""Records, outbox, snapshots, failures and history in memory: the reference ``RecordStore``."""

from __future__ import annotations

import builtins
import dataclasses
import itertools
from collections.abc import Sequence
from datetime import datetime

from ..._capabilities import DefinitionRecord, Failure, HistoryEntry, RunPage, RunQuery
from ..._errors import RecordNotFound, VersionConflict, WorkflowError, WorkflowInProgress
from ..._event import OutboxEvent
from ..._ids import check_foreign_id, invalid_foreign_id
from ..._kit._signal import Signal
from ..._protocols import Order, RecordFilter, RecordWrite
from ..._record import Record
from ..._runstate import RunState
from .._listing import check_query, decode_cursor, encode_cursor, key_of, matches, page_limit

__all__ = ["MemoryRecordStore"]

_ACTIVE = frozenset({RunState.INITIATED, RunState.RUNNING, RunState.PAUSED})


class MemoryRecordStore:
    """``RecordStore`` in memory, with every stored version kept for tests (``snapshots``).

    Writes are compare-and-set on the version; at most one active run per workflow and
    foreign ID. Records are immutable, so nothing is copied. Failed attempts are kept
    beside the runs (``RecordsFailures``) and every applied write adds a history entry
    (``KeepsHistory``). Runs are listed by keyset (``ListsRuns``) with a scan and a sort:
    the reference behaviour, not a fast one.
    """

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._created_seq: dict[str, int] = {}
        self._by_foreign_id: dict[tuple[str, str], list[str]] = {}
        self._active: dict[tuple[str, str], str] = {}
        self._outbox: dict[str, dict[str, OutboxEvent]] = {}
        self._outbox_signals: dict[str, Signal] = {}
        self._snapshots: dict[str, list[Record]] = {}
        # run ID -> (version, attempt) -> failure. The history is read off the snapshots
        # (every applied write), with the failures attached.
        self._failures: dict[str, dict[tuple[int, int], Failure]] = {}
        self._definitions: dict[str, list[DefinitionRecord]] = {}
        self._event_location: str | None = None
        self._seq = itertools.count()
        self._changed = Signal()

    # ------------------------------------------------------------------ writes

    async def store(self, write: RecordWrite) -> None:
        err = self._apply(write)
        if err is not None:
            raise err
        self._notify(write.record.workflow_name)

    async def store_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        outcomes = [self._apply(w) for w in writes]
        for name in {w.record.workflow_name for w in writes}:
            self._notify(name)
        return outcomes

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        record = write.record
        run_id = record.run_id
        stored = self._records.get(run_id)
        if write.expected_version == 0:
            refused = invalid_foreign_id(record.foreign_id)
            if refused is not None:
                return refused
            if stored is not None:
                return VersionConflict(run_id, 0, stored.meta.version)
        elif stored is None or stored.meta.version != write.expected_version:
            return VersionConflict(
                run_id, write.expected_version, None if stored is None else stored.meta.version
            )
        key = (record.workflow_name, record.foreign_id)
        active = self._active.get(key)
        if record.run_state in _ACTIVE:
            if active is not None and active != run_id:
                return WorkflowInProgress(record.workflow_name, record.foreign_id)
            self._active[key] = run_id
        elif active == run_id:
            del self._active[key]
        if stored is None:
            self._created_seq[run_id] = next(self._seq)
            self._by_foreign_id.setdefault(key, []).append(run_id)
        self._records[run_id] = record
        self._snapshots.setdefault(run_id, []).append(record)
        if record.run_state is RunState.DATA_DELETED:
            self._scrub(run_id)
        outbox = self._outbox.get(record.workflow_name)
        if outbox is None:
            outbox = self._outbox[record.workflow_name] = {}
        outbox[write.outbox.id] = write.outbox
        return None

    def _scrub(self, run_id: str) -> None:
        """Empty the messages of the run's failures (they may quote the deleted object)."""
        failures = self._failures.get(run_id)
        if failures:
            for key, failure in failures.items():
                failures[key] = dataclasses.replace(failure, message="")

    def _notify(self, workflow_name: str) -> None:
        signal = self._outbox_signals.get(workflow_name)
        if signal is not None:
            signal.fire()
        self._changed.fire()

    # ------------------------------------------------------------------ reads

    async def lookup(self, run_id: str) -> Record:
        try:
            return self._records[run_id]
        except KeyError:
            raise RecordNotFound(f"record not found: run_id={run_id}") from None

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        check_foreign_id(foreign_id)
        run_ids = self._by_foreign_id.get((workflow_name, foreign_id))
        if not run_ids:
            raise RecordNotFound(
                f"record not found: workflow={workflow_name!r} foreign_id={foreign_id!r}"
            )
        return max((self._records[r] for r in run_ids), key=self._creation_key)

    def _creation_key(self, record: Record) -> tuple[object, int]:
        return (record.created_at, self._created_seq[record.run_id])

    async def list(
        self,
        workflow_name: str = "",
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = Order.ASC,
        filter: RecordFilter | None = None,
    ) -> Sequence[Record]:
        if limit <= 0:
            limit = 25
        if filter is not None:
            for foreign_id in filter.foreign_ids:
                check_foreign_id(foreign_id)
        matches = [
            r
            for r in self._records.values()
            if (not workflow_name or r.workflow_name == workflow_name)
            and (filter is None or filter.matches(r))
        ]
        matches.sort(key=self._creation_key, reverse=order is Order.DESC)
        return matches[max(0, offset) : max(0, offset) + limit]

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        """Up to ``limit`` runs of ``query`` after ``cursor``, by (created_at, run ID)."""
        limit = page_limit(limit)
        check_query(query)
        after = None if cursor is None else decode_cursor(cursor, query.newest_first)
        found = []
        for record in self._records.values():
            if not matches(query, record):
                continue
            key = key_of(record)
            if after is not None and (
                (key.created_at_us, key.run_id) >= (after.created_at_us, after.run_id)
                if query.newest_first
                else (key.created_at_us, key.run_id) <= (after.created_at_us, after.run_id)
            ):
                continue
            found.append(record)
        found.sort(key=lambda r: (key_of(r).created_at_us, r.run_id), reverse=query.newest_first)
        page = found[:limit]
        more = len(found) > limit
        return RunPage(page, encode_cursor(key_of(page[-1]), query.newest_first) if more else None)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        """How many runs match ``query``, at most ``cap``."""
        check_query(query)
        return min(max(0, cap), sum(1 for r in self._records.values() if matches(query, r)))

    # ------------------------------------------------------------------ outbox

    async def list_outbox_events(self, workflow_name: str, limit: int) -> Sequence[OutboxEvent]:
        events = self._outbox.get(workflow_name)
        if not events:
            return []
        return list(itertools.islice(events.values(), limit))

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        for outbox in self._outbox.values():
            for event_id in ids:
                outbox.pop(event_id, None)

    async def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        if self._outbox.get(workflow_name):
            return
        signal = self._outbox_signals.get(workflow_name)
        if signal is None:
            signal = self._outbox_signals[workflow_name] = Signal()
        await signal.wait(timeout)

    # ------------------------------------------------------------------ failures, history

    async def record_failure(self, failure: Failure) -> bool:
        """Keep ``failure`` if the run is still at its version (``RecordsFailures``)."""
        stored = self._records.get(failure.run_id)
        if stored is None or stored.meta.version != failure.version:
            return False
        self._failures.setdefault(failure.run_id, {})[(failure.version, failure.attempt)] = failure
        return True

    async def failures(self, run_id: str, version: int | None = None) -> Sequence[Failure]:
        """The run's failures by version and attempt (only ``version``'s if given)."""
        kept = self._failures.get(run_id)
        if not kept:
            return []
        return [kept[k] for k in sorted(kept) if version is None or k[0] == version]

    async def retries_due(
        self, workflow_name: str, process: str, limit: int = 1000
    ) -> Sequence[Failure]:
        """The latest failure of each run ``process`` must retry, earliest due first."""
        due: builtins.list[Failure] = []
        for run_id, kept in self._failures.items():
            record = self._records[run_id]
            latest = kept[max(kept)]
            if (
                latest.version == record.meta.version
                and latest.workflow_name == workflow_name
                and latest.process == process
                and latest.next_attempt_at is not None
            ):
                due.append(latest)
        due.sort(key=lambda f: (f.next_attempt_at, f.run_id))
        return due[: max(0, limit)]

    async def history(self, run_id: str) -> Sequence[HistoryEntry]:
        """Every applied write of the run, oldest first, with its version's failures."""
        kept = self._failures.get(run_id, {})
        by_version: dict[int, builtins.list[Failure]] = {}
        for key in sorted(kept):
            by_version.setdefault(key[0], []).append(kept[key])
        return [
            HistoryEntry(
                r.meta.version,
                r.status,
                r.run_state,
                r.meta.run_state_reason,
                r.updated_at,
                tuple(by_version.get(r.meta.version, ())),
            )
            for r in self._snapshots.get(run_id, ())
        ]

    # ------------------------------------------------------------------ definitions

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        """Keep ``document`` as a new version unless the latest has ``hash``."""
        kept = self._definitions.setdefault(workflow_name, [])
        if kept and kept[-1].hash == hash:
            return kept[-1]
        record = DefinitionRecord(workflow_name, len(kept) + 1, hash, document, at)
        kept.append(record)
        return record

    async def definitions(self) -> Sequence[DefinitionRecord]:
        """The latest definition of every workflow, by workflow name."""
        return [self._definitions[name][-1] for name in sorted(self._definitions)]

    async def definition_versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        """Every version of one workflow's definition, oldest first."""
        return list(self._definitions.get(workflow_name, ()))

    # ------------------------------------------------------------------ event location

    async def pin_event_location(self, location: str) -> str:
        """Record ``location`` unless one is recorded; return the recorded one."""
        if self._event_location is None:
            self._event_location = location
        return self._event_location

    async def repin_event_location(self, location: str) -> None:
        """Record ``location`` whatever was recorded."""
        self._event_location = location

    # ------------------------------------------------------------------ testing

    def snapshots(self, workflow_name: str, foreign_id: str, run_id: str) -> builtins.list[Record]:
        """Every version of the run ever stored, oldest first."""
        return [
            r
            for r in self._snapshots.get(run_id, ())
            if r.workflow_name == workflow_name and r.foreign_id == foreign_id
        ]

    def all_records(self) -> builtins.list[Record]:
        """Every run's current record, in creation order."""
        return sorted(self._records.values(), key=self._creation_key)

    def outbox_size(self) -> int:
        """How many outbox events wait to be relayed (all workflows)."""
        return sum(len(o) for o in self._outbox.values())

    async def wait_for_change(self, timeout: float | None = None) -> None:
        """Return after the next write (or ``timeout``): lets tests wait without sleeping."""
        await self._changed.wait(timeout)

    async def close(self) -> None:
        """Nothing to release: memory adapters hold no connections. Idempotent."""
