"""Conformance suite of the ``RecordsFailures`` capability: failed attempts kept beside a
run, compare-and-set on its version, without writing the run.

Run it beside ``RecordStoreSuite`` with the same ``store`` fixture. The first case checks
the claim (``isinstance``); the others the promises on ``RecordsFailures``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from .._capabilities import Failure, RecordsFailures
from .._protocols import RecordStore
from .._record import Record
from .._runstate import RunState
from ._fixtures import (
    SECOND_WORKFLOW,
    Status,
    assert_record_equal,
    dummy_record,
    insert,
    update,
)
from ._record_store import StoreCases

__all__ = ["RecordsFailuresSuite", "failure"]

_FAILED_AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
PROCESS = "my_workflow-started-consumer-1-of-1"
"""The background process the suites' failures are made by."""
OTHER_PROCESS = "my_workflow-middle-consumer-1-of-1"


def failure(
    record: Record,
    attempt: int = 1,
    *,
    version: int | None = None,
    process: str = PROCESS,
    message: str = "boom",
    due_in: float | None = 10.0,
) -> Failure:
    """A failed attempt on ``record``'s version (or ``version``), due again ``due_in``
    seconds after it failed (``None``: no next attempt). Times are distinct per attempt
    and carry microseconds."""
    failed_at = _FAILED_AT + timedelta(seconds=attempt, microseconds=attempt)
    return Failure(
        workflow_name=record.workflow_name,
        run_id=record.run_id,
        version=record.meta.version if version is None else version,
        attempt=attempt,
        process=process,
        error_type="ValueError",
        message=f"{message} (attempt {attempt})",
        failed_at=failed_at,
        next_attempt_at=None if due_in is None else failed_at + timedelta(seconds=due_in),
    )


def _failures(store: RecordStore) -> RecordsFailures:
    assert isinstance(store, RecordsFailures), f"{type(store).__name__} records no failures"
    return store


def _keys(failures: Sequence[Failure]) -> list[tuple[str, int, int]]:
    return [(f.run_id, f.version, f.attempt) for f in failures]


class RecordsFailuresSuite(StoreCases):
    """Cases for record stores that keep failed attempts (``RecordsFailures``).

    Override the ``store`` fixture as for ``RecordStoreSuite`` (the same store passes
    both). The engine records each failed step, timeout or hook attempt here, counts the
    failures at a run's current version, and retries what ``retries_due`` lists when it
    takes a process's role over.
    """

    async def test_store_records_failures(self, store: RecordStore) -> None:
        assert isinstance(store, RecordsFailures)

    async def test_a_failure_is_kept_while_the_run_is_at_its_version(
        self, store: RecordStore
    ) -> None:
        # Given a stored run at version 1
        record = dummy_record()
        await store.store(insert(record))

        # When a failure of version 1 is recorded
        kept = failure(record)
        assert await _failures(store).record_failure(kept) is True

        # Then it is kept, every field as recorded
        assert list(await _failures(store).failures(record.run_id)) == [kept]

    async def test_a_failure_of_a_version_the_run_moved_on_from_is_not_kept(
        self, store: RecordStore
    ) -> None:
        # Given a run inserted and then updated (version 2)
        record = dummy_record()
        await store.store(insert(record))
        await store.store(update(record, status=Status.MIDDLE))

        # When an attempt that read version 1 fails, and one claims version 3
        stale = await _failures(store).record_failure(failure(record))
        ahead = await _failures(store).record_failure(failure(record, version=3))

        # Then neither is kept
        assert (stale, ahead) == (False, False)
        assert list(await _failures(store).failures(record.run_id)) == []

    async def test_recording_a_failure_leaves_the_record_and_its_outbox_untouched(
        self, store: RecordStore
    ) -> None:
        # Given a stored run and its outbox event
        record = dummy_record()
        await store.store(insert(record))
        outbox = [e.id for e in await store.list_outbox_events(record.workflow_name, 1000)]

        # When failures are recorded on it
        assert await _failures(store).record_failure(failure(record, 1))
        assert await _failures(store).record_failure(failure(record, 2))

        # Then the record is as written (same version and updated_at), no event was added
        assert_record_equal(await store.lookup(record.run_id), record)
        after = [e.id for e in await store.list_outbox_events(record.workflow_name, 1000)]
        assert after == outbox
        # ... and the write that follows the attempt still expects version 1
        await store.store(update(record, status=Status.MIDDLE))
        assert (await store.lookup(record.run_id)).version == 2

    async def test_recording_the_same_key_again_replaces_it(self, store: RecordStore) -> None:
        # Given a recorded failure
        record = dummy_record()
        await store.store(insert(record))
        assert await _failures(store).record_failure(failure(record, 1, message="first"))

        # When the same run, version and attempt is recorded again
        again = dataclasses.replace(
            failure(record, 1, message="second", process=OTHER_PROCESS, due_in=None),
            error_type="KeyError",
        )
        assert await _failures(store).record_failure(again) is True

        # Then only the second is kept
        assert list(await _failures(store).failures(record.run_id)) == [again]

    async def test_failures_are_listed_oldest_first_and_filtered_by_version(
        self, store: RecordStore
    ) -> None:
        # Given two attempts failed on version 1 (recorded out of order), one on version 2,
        # and a failure of another run
        record = dummy_record()
        await store.store(insert(record))
        v1 = [failure(record, 1), failure(record, 2)]
        assert await _failures(store).record_failure(v1[1])
        assert await _failures(store).record_failure(v1[0])
        middle = update(record, status=Status.MIDDLE)
        await store.store(middle)
        v2 = [failure(middle.record, 1)]
        assert await _failures(store).record_failure(v2[0])
        other = dummy_record(SECOND_WORKFLOW)
        await store.store(insert(other))
        assert await _failures(store).record_failure(failure(other))

        # Then the run's failures come by version and attempt, all or one version's
        got = _failures(store)
        assert list(await got.failures(record.run_id)) == [*v1, *v2]
        assert list(await got.failures(record.run_id, 1)) == v1
        assert list(await got.failures(record.run_id, version=2)) == v2
        assert list(await got.failures(record.run_id, 3)) == []

    async def test_an_unknown_run_keeps_nothing_and_has_no_failures(
        self, store: RecordStore
    ) -> None:
        # Given a store with one run
        record = dummy_record()
        await store.store(insert(record))
        unknown = dummy_record(foreign_id="never stored")

        # Then a failure of a run never stored is not kept, and nothing is listed for it
        assert await _failures(store).record_failure(failure(unknown)) is False
        assert list(await _failures(store).failures(unknown.run_id)) == []
        assert list(await _failures(store).failures(unknown.run_id, 1)) == []
        assert list(await _failures(store).retries_due(SECOND_WORKFLOW, PROCESS)) == []

    # ------------------------------------------------------------------ retries_due

    async def test_retries_due_lists_the_latest_failure_of_each_run_of_that_process(
        self, store: RecordStore
    ) -> None:
        runs = [dummy_record(foreign_id=f"run-{i}") for i in range(5)]
        for run in runs:
            await store.store(insert(run))
        f = _failures(store)
        # Given a run that failed twice under the process (its latest failure is due)
        assert await f.record_failure(failure(runs[0], 1, due_in=1))
        assert await f.record_failure(failure(runs[0], 2, due_in=5))
        # ... a run whose latest failure was made by another process
        assert await f.record_failure(failure(runs[1], 1, due_in=1))
        assert await f.record_failure(failure(runs[1], 2, process=OTHER_PROCESS, due_in=6))
        # ... a run whose latest failure has no next attempt (paused by the caller)
        assert await f.record_failure(failure(runs[2], 1, due_in=1))
        assert await f.record_failure(failure(runs[2], 2, due_in=None))
        # ... a run that failed under the other process only, and one that never failed
        assert await f.record_failure(failure(runs[3], 1, process=OTHER_PROCESS, due_in=9))

        # Then the process must retry the first run alone, at its latest failure
        assert _keys(await f.retries_due(runs[0].workflow_name, PROCESS)) == [
            (runs[0].run_id, 1, 2)
        ]
        # ... and the other process the two runs whose latest failure is its own
        assert _keys(await f.retries_due(runs[0].workflow_name, OTHER_PROCESS)) == [
            (runs[1].run_id, 1, 2),
            (runs[3].run_id, 1, 1),
        ]
        # ... each as recorded; and no process of another workflow has anything due
        (due,) = await f.retries_due(runs[0].workflow_name, PROCESS)
        assert due == failure(runs[0], 2, due_in=5)
        assert list(await f.retries_due(SECOND_WORKFLOW, PROCESS)) == []

    async def test_retries_due_lists_a_run_only_while_it_is_at_that_version(
        self, store: RecordStore
    ) -> None:
        f = _failures(store)
        # Given failed runs at the failure's version, in every run state a retrying
        # process can meet (a hook's failure is on a stopped or finished run) ...
        initiated = dummy_record(foreign_id="initiated")
        running = dummy_record(foreign_id="running", run_state=RunState.RUNNING)
        paused = dummy_record(foreign_id="paused", run_state=RunState.PAUSED)
        done = dummy_record(foreign_id="done", run_state=RunState.COMPLETED)
        # ... and one that moved on to a new version
        moved = dummy_record(foreign_id="moved", run_state=RunState.RUNNING)
        runs = [initiated, running, paused, done, moved]
        for i, run in enumerate(runs):
            await store.store(insert(run))
            assert await f.record_failure(failure(run, due_in=i + 1))
        await store.store(update(moved, status=Status.MIDDLE))

        # Then every run still at its failure's version is due, the moved one is not
        assert _keys(await f.retries_due(initiated.workflow_name, PROCESS)) == [
            (initiated.run_id, 1, 1),
            (running.run_id, 1, 1),
            (paused.run_id, 1, 1),
            (done.run_id, 1, 1),
        ]

    async def test_retries_due_lists_the_earliest_due_first_up_to_the_limit(
        self, store: RecordStore
    ) -> None:
        # Given five failed runs due in a shuffled order
        f = _failures(store)
        delays = [30.0, 10.0, 50.0, 20.0, 40.0]
        runs = [dummy_record(foreign_id=f"run-{i}") for i in range(len(delays))]
        for run, delay in zip(runs, delays, strict=True):
            await store.store(insert(run))
            assert await f.record_failure(failure(run, due_in=delay))
        by_due = [r.run_id for _, r in sorted(zip(delays, runs, strict=True), key=lambda p: p[0])]

        # Then they are listed earliest due first, and cut at the limit
        assert [d.run_id for d in await f.retries_due(runs[0].workflow_name, PROCESS)] == by_due
        got = await f.retries_due(runs[0].workflow_name, PROCESS, limit=3)
        assert [d.run_id for d in got] == by_due[:3]
