"""Conformance suites of the record-store capabilities: ``KeepsSnapshots``,
``NotifiesChanges`` and ``ReportsOutbox``.

Run each beside ``RecordStoreSuite`` with the same ``store`` fixture. Each suite's first case
checks the claim (``isinstance``); the others the promise on the capability's Protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from .._capabilities import (
    KeepsSnapshots,
    NotifiesChanges,
    ReportsOutbox,
)
from .._errors import VersionConflict, WorkflowInProgress
from .._protocols import (
    RecordStore,
    RecordWrite,
)
from .._record import Record
from .._runstate import RunState
from ._event_streamer import _yield_to_others
from ._fixtures import (
    FOREIGN_ID,
    SECOND_WORKFLOW,
    WORKFLOW,
    Status,
    assert_record_equal,
    dummy_record,
    insert,
    update,
    within,
)
from ._record_store import StoreCases

__all__ = ["KeepsSnapshotsSuite", "NotifiesChangesSuite", "ReportsOutboxSuite"]


def _assert_records_equal(got: Sequence[Record], want: Sequence[Record]) -> None:
    assert [r.version for r in got] == [r.version for r in want], "versions differ"
    for g, w in zip(got, want, strict=True):
        assert_record_equal(g, w)


class KeepsSnapshotsSuite(StoreCases):
    """Cases for record stores that keep every version of a run (``KeepsSnapshots``).

    Override the ``store`` fixture as for ``RecordStoreSuite`` (the same store passes
    both). ``conveyor.testing.require`` relies on these: it finds a status a run has
    already passed in its snapshots.
    """

    def _snapshots(self, store: RecordStore, record: Record) -> Sequence[Record]:
        assert isinstance(store, KeepsSnapshots), f"{type(store).__name__} keeps no snapshots"
        return store.snapshots(record.workflow_name, record.foreign_id, record.run_id)

    async def test_store_keeps_snapshots(self, store: RecordStore) -> None:
        assert isinstance(store, KeepsSnapshots)

    async def test_snapshots_hold_every_applied_version_oldest_first(
        self, store: RecordStore
    ) -> None:
        # Given a run written three times
        record = dummy_record()
        middle = update(record, status=Status.MIDDLE)
        end = update(middle.record, status=Status.END, run_state=RunState.COMPLETED)

        # When each write is applied
        await store.store(insert(record))
        await store.store(middle)
        await store.store(end)

        # Then its snapshots are the three versions, in the order written
        _assert_records_equal(self._snapshots(store, record), [record, middle.record, end.record])

    async def test_writes_applied_by_store_many_are_snapshotted(self, store: RecordStore) -> None:
        # Given a stored run
        record = dummy_record()
        await store.store(insert(record))
        other = dummy_record(foreign_id="someone else")
        middle = update(record, status=Status.MIDDLE)

        # When a batch updates it and inserts another run
        outcomes = await store.store_many([middle, insert(other)])

        # Then both runs' snapshots hold every version
        assert list(outcomes) == [None, None]
        _assert_records_equal(self._snapshots(store, record), [record, middle.record])
        _assert_records_equal(self._snapshots(store, other), [other])

    async def test_a_rejected_write_leaves_no_snapshot(self, store: RecordStore) -> None:
        # Given a run at version 2
        record = dummy_record()
        await store.store(insert(record))
        current = update(record, status=Status.MIDDLE)
        await store.store(current)

        # When a compare-and-set write expecting version 1 is refused, alone and in a batch
        with pytest.raises(VersionConflict):
            await store.store(update(record, status=Status.END))
        (outcome,) = await store.store_many([update(record, status=Status.END)])
        assert isinstance(outcome, VersionConflict)
        # ... and so is a second active run of its foreign ID
        blocked = dummy_record()
        with pytest.raises(WorkflowInProgress):
            await store.store(insert(blocked))

        # Then the snapshots hold the applied versions only, and none of the refused run
        _assert_records_equal(self._snapshots(store, record), [record, current.record])
        assert list(self._snapshots(store, blocked)) == []

    async def test_snapshots_are_kept_per_run(self, store: RecordStore) -> None:
        # Given a finished run and a newer run of the same foreign ID
        first = dummy_record()
        await store.store(insert(first))
        first_done = update(first, run_state=RunState.COMPLETED)
        await store.store(first_done)
        second = dummy_record()
        await store.store(insert(second))

        # Then each run's snapshots hold its own versions only
        _assert_records_equal(self._snapshots(store, first), [first, first_done.record])
        _assert_records_equal(self._snapshots(store, second), [second])

    async def test_snapshots_of_an_unknown_run_are_empty(self, store: RecordStore) -> None:
        # Given a stored run
        record = dummy_record()
        await store.store(insert(record))
        assert isinstance(store, KeepsSnapshots)

        # Then a run ID never stored, or the run under another workflow or foreign ID,
        # has no snapshots
        assert list(store.snapshots(WORKFLOW, FOREIGN_ID, "no-such-run-id")) == []
        assert list(store.snapshots(SECOND_WORKFLOW, FOREIGN_ID, record.run_id)) == []
        assert list(store.snapshots(WORKFLOW, "someone else", record.run_id)) == []


class NotifiesChangesSuite(StoreCases):
    """Cases for record stores that wake waiters on every write (``NotifiesChanges``).

    Override the ``store`` fixture as for ``RecordStoreSuite``. The test helpers
    (``conveyor.testing.wait_for`` and ``require``) wait on these wake-ups instead of
    polling. No case waits a fixed time: a waiter woken by a write is given no timeout,
    so only the write can end it before ``wait_timeout`` fails the case.
    """

    def _notifying(self, store: RecordStore) -> NotifiesChanges:
        assert isinstance(store, NotifiesChanges), f"{type(store).__name__} notifies nothing"
        return store

    async def _waiting(self, store: RecordStore) -> asyncio.Task[None]:
        """A waiter with no timeout that has started waiting."""
        waiter = asyncio.create_task(self._notifying(store).wait_for_change(None))
        await _yield_to_others()
        assert not waiter.done(), "wait_for_change returned before any write"
        return waiter

    async def test_store_notifies_changes(self, store: RecordStore) -> None:
        assert isinstance(store, NotifiesChanges)

    async def test_a_waiter_returns_after_a_write(self, store: RecordStore) -> None:
        # Given a waiter
        waiter = await self._waiting(store)
        try:
            # When a write is applied
            await store.store(insert(dummy_record()))

            # Then the waiter returns
            await within(waiter, self.wait_timeout, "wait_for_change to return after a write")
        finally:
            waiter.cancel()

    async def test_a_waiter_returns_after_a_store_many(self, store: RecordStore) -> None:
        # Given a waiter
        waiter = await self._waiting(store)
        try:
            # When a batch of writes is applied
            await store.store_many([insert(dummy_record(foreign_id=f"f-{i}")) for i in range(2)])

            # Then the waiter returns
            await within(waiter, self.wait_timeout, "wait_for_change to return after a batch")
        finally:
            waiter.cancel()

    async def test_every_waiter_returns_after_one_write(self, store: RecordStore) -> None:
        # Given three waiters
        waiters = [await self._waiting(store) for _ in range(3)]
        try:
            # When one write is applied
            await store.store(insert(dummy_record()))

            # Then all of them return
            await within(asyncio.gather(*waiters), self.wait_timeout, "every waiter to return")
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def test_a_waiter_returns_at_its_timeout_without_a_write(
        self, store: RecordStore
    ) -> None:
        # Given no write at all, a waiter with a tiny timeout returns (and raises nothing)
        await within(
            self._notifying(store).wait_for_change(0.01),
            self.wait_timeout,
            "wait_for_change to return at its timeout",
        )


class ReportsOutboxSuite(StoreCases):
    """Cases for record stores that count their outbox without I/O (``ReportsOutbox``).

    Override the ``store`` fixture as for ``RecordStoreSuite``. ``run_until_idle`` is not
    idle while the count is positive, so it must fall to ``0`` once every outbox event is
    deleted.
    """

    def _size(self, store: RecordStore) -> int:
        assert isinstance(store, ReportsOutbox), f"{type(store).__name__} reports no outbox"
        size = store.outbox_size()
        assert isinstance(size, int), f"outbox_size() returned {size!r}, not an int"
        return size

    async def test_store_reports_outbox(self, store: RecordStore) -> None:
        assert isinstance(store, ReportsOutbox)

    async def test_an_empty_store_reports_zero(self, store: RecordStore) -> None:
        assert self._size(store) == 0

    async def test_each_applied_write_of_any_workflow_counts_once(self, store: RecordStore) -> None:
        # Given a run written twice in one workflow, and one run in another
        record = dummy_record()
        await store.store(insert(record))
        assert self._size(store) == 1
        await store.store(update(record, status=Status.MIDDLE))
        assert self._size(store) == 2

        # When a batch inserts a run of the second workflow
        await store.store_many([insert(dummy_record(SECOND_WORKFLOW))])

        # Then every write's outbox event counts
        assert self._size(store) == 3

    async def test_a_rejected_write_adds_nothing(self, store: RecordStore) -> None:
        # Given one applied write
        record = dummy_record()
        await store.store(insert(record))

        # When writes are refused (a version not stored, a second active run)
        ahead = update(record, status=Status.MIDDLE)
        with pytest.raises(VersionConflict):
            await store.store(RecordWrite(ahead.record, ahead.outbox, expected_version=5))
        with pytest.raises(WorkflowInProgress):
            await store.store(insert(dummy_record()))

        # Then only the applied write counts
        assert self._size(store) == 1

    async def test_deleted_outbox_events_no_longer_count(self, store: RecordStore) -> None:
        # Given three outbox events in two workflows
        writes = [
            insert(dummy_record(foreign_id="a")),
            insert(dummy_record(foreign_id="b")),
            insert(dummy_record(SECOND_WORKFLOW)),
        ]
        for write in writes:
            await store.store(write)
        assert self._size(store) == 3

        # When one is deleted, then the others (with an unknown ID among them)
        await store.delete_outbox_events([writes[0].outbox.id])
        assert self._size(store) == 2
        await store.delete_outbox_events(
            ["outbox-id-unknown", writes[1].outbox.id, writes[2].outbox.id]
        )

        # Then nothing counts: the outbox is empty
        assert self._size(store) == 0
        assert list(await store.list_outbox_events(WORKFLOW, 1000)) == []
