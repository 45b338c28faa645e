"""Conformance suite of the ``KeepsHistory`` capability: every version's status, run state
and reason, and the failures recorded on it.

Run it beside ``RecordStoreSuite`` with the same ``store`` fixture. The first case checks
the claim (``isinstance``); the others the promises on ``KeepsHistory``. The cases about
failures need the store to record them too (``RecordsFailures``) and are skipped if not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta

import pytest

from .._capabilities import Failure, HistoryEntry, KeepsHistory, RecordsFailures
from .._errors import VersionConflict, WorkflowInProgress
from .._protocols import RecordStore, RecordWrite
from .._record import Meta, Record
from .._runstate import RunState
from ._failures import failure
from ._fixtures import SECOND_WORKFLOW, Status, dummy_record, insert, update
from ._record_store import StoreCases

__all__ = ["KeepsHistorySuite"]


def _history(store: RecordStore) -> KeepsHistory:
    assert isinstance(store, KeepsHistory), f"{type(store).__name__} keeps no history"
    return store


def _recording(store: RecordStore) -> RecordsFailures:
    if not isinstance(store, RecordsFailures):
        pytest.skip(f"{type(store).__name__} records no failures")
    return store


def _entry(record: Record, *failures: Failure) -> HistoryEntry:
    """The history entry a write of ``record`` leaves."""
    return HistoryEntry(
        version=record.meta.version,
        status=record.status,
        run_state=record.run_state,
        reason=record.meta.run_state_reason,
        at=record.updated_at,
        failures=failures,
    )


def _assert_history(got: Sequence[HistoryEntry], want: Sequence[HistoryEntry]) -> None:
    assert [e.version for e in got] == [e.version for e in want], "versions differ"
    for g, w in zip(got, want, strict=True):
        assert isinstance(g.run_state, RunState), "run_state must come back as a RunState"
        assert g == w


def _moved(
    previous: Record, run_state: RunState, reason: str = "", **changes: object
) -> RecordWrite:
    """The write moving ``previous`` to ``run_state`` with ``reason``, a millisecond later."""
    meta = dataclasses.replace(previous.meta, run_state_reason=reason)
    return update(
        previous.replace(meta=meta),
        run_state=run_state,
        updated_at=previous.updated_at + timedelta(milliseconds=1, microseconds=7),
        **changes,
    )


def _with_reason(write: RecordWrite, reason: str) -> RecordWrite:
    meta: Meta = dataclasses.replace(write.record.meta, run_state_reason=reason)
    return dataclasses.replace(write, record=write.record.replace(meta=meta))


class KeepsHistorySuite(StoreCases):
    """Cases for record stores that keep every version of a run's state (``KeepsHistory``).

    Override the ``store`` fixture as for ``RecordStoreSuite`` (the same store passes
    both). Operators read a run's history: what it went through, and why.
    """

    async def test_store_keeps_history(self, store: RecordStore) -> None:
        assert isinstance(store, KeepsHistory)

    async def test_history_has_an_entry_per_applied_write_oldest_first(
        self, store: RecordStore
    ) -> None:
        # Given a run inserted, started, paused with a reason, resumed and completed
        record = dummy_record()
        running = _moved(record, RunState.RUNNING, status=Status.MIDDLE)
        paused = _moved(running.record, RunState.PAUSED, "waiting for the bank")
        resumed = _moved(paused.record, RunState.RUNNING)
        done = _moved(resumed.record, RunState.COMPLETED, status=Status.END)

        # When each write is applied
        for write in (insert(record), running, paused, resumed, done):
            await store.store(write)

        # Then the history holds each version's status, run state, reason and time
        _assert_history(
            await _history(store).history(record.run_id),
            [_entry(w.record) for w in (insert(record), running, paused, resumed, done)],
        )

    async def test_writes_applied_by_store_many_are_in_the_history(
        self, store: RecordStore
    ) -> None:
        # Given a stored run
        record = dummy_record()
        await store.store(insert(record))
        other = dummy_record(SECOND_WORKFLOW)
        paused = _moved(record, RunState.PAUSED, "paused by an operator")

        # When a batch updates it and inserts another run
        assert list(await store.store_many([paused, insert(other)])) == [None, None]

        # Then both runs' histories hold every version
        _assert_history(
            await _history(store).history(record.run_id), [_entry(record), _entry(paused.record)]
        )
        _assert_history(await _history(store).history(other.run_id), [_entry(other)])

    async def test_a_write_that_lost_its_compare_and_set_adds_no_entry(
        self, store: RecordStore
    ) -> None:
        # Given a run at version 2
        record = dummy_record()
        await store.store(insert(record))
        current = update(record, status=Status.MIDDLE)
        await store.store(current)

        # When writes expecting version 1 are refused, alone and in a batch
        lost = _with_reason(update(record, status=Status.END), "lost")
        with pytest.raises(VersionConflict):
            await store.store(lost)
        (outcome,) = await store.store_many([lost])
        assert isinstance(outcome, VersionConflict)
        # ... and so is a second active run of its foreign ID
        blocked = dummy_record()
        with pytest.raises(WorkflowInProgress):
            await store.store(insert(blocked))

        # Then the history holds the applied versions only, and none of the refused run
        _assert_history(
            await _history(store).history(record.run_id), [_entry(record), _entry(current.record)]
        )
        assert list(await _history(store).history(blocked.run_id)) == []

    async def test_failures_are_attached_to_their_version(self, store: RecordStore) -> None:
        recording = _recording(store)
        # Given a run that failed twice at version 1, once at version 2, then moved on
        record = dummy_record()
        await store.store(insert(record))
        v1 = (failure(record, 1), failure(record, 2))
        for f in v1:
            assert await recording.record_failure(f)
        middle = update(record, status=Status.MIDDLE)
        await store.store(middle)
        v2 = (failure(middle.record, 1, due_in=None),)
        assert await recording.record_failure(v2[0])
        end = update(middle.record, status=Status.END, run_state=RunState.COMPLETED)
        await store.store(end)
        # ... and a late attempt of version 1 that is not kept
        assert not await recording.record_failure(failure(record, 3))

        # Then each entry holds the failures recorded on its version, in attempt order
        _assert_history(
            await _history(store).history(record.run_id),
            [_entry(record, *v1), _entry(middle.record, *v2), _entry(end.record)],
        )

    async def test_a_write_to_data_deleted_empties_the_messages_of_the_run_s_failures(
        self, store: RecordStore
    ) -> None:
        recording = _recording(store)
        # Given three failed runs, completed, whose data deletion was asked for
        runs = [dummy_record(foreign_id=f"run-{i}") for i in range(3)]
        requested: list[Record] = []
        for run in runs:
            await store.store(insert(run))
            assert await recording.record_failure(failure(run, 1, message="quotes the object"))
            done = _moved(run, RunState.COMPLETED, status=Status.END)
            await store.store(done)
            assert await recording.record_failure(failure(done.record, 1, message="hook"))
            asked = _moved(done.record, RunState.REQUESTED_DATA_DELETED)
            await store.store(asked)
            requested.append(asked.record)
        before = [list(await recording.failures(run.run_id)) for run in runs]
        assert all(f.message for fs in before for f in fs), "a request deletes nothing yet"

        # When the first run's data is deleted with store, and the second's in a batch
        await store.store(_moved(requested[0], RunState.DATA_DELETED, object=b"{}"))
        deleted = _moved(requested[1], RunState.DATA_DELETED, object=b"{}")
        assert list(await store.store_many([deleted])) == [None]

        # Then their failures keep everything but the message, in the history too
        for i in (0, 1):
            scrubbed = [dataclasses.replace(f, message="") for f in before[i]]
            assert list(await recording.failures(runs[i].run_id)) == scrubbed
            entries = await _history(store).history(runs[i].run_id)
            assert [f for e in entries for f in e.failures] == scrubbed
            assert entries[-1].run_state is RunState.DATA_DELETED
        # ... and the third run's failures are as recorded
        assert list(await recording.failures(runs[2].run_id)) == before[2]

    async def test_the_history_of_an_unknown_run_is_empty(self, store: RecordStore) -> None:
        # Given a stored run
        await store.store(insert(dummy_record()))

        # Then a run never stored has no history
        assert list(await _history(store).history("no-such-run-id")) == []
