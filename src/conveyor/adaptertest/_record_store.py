"""The ``RecordStore`` conformance suite (luno-behaviour.md §2.2, plus conveyor's rules).

Over 400 lines on purpose: one suite is one class of independent cases, and keeping a
contract's cases together is what lets a reader check the suite against the contract.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
import pytest_asyncio

from .._errors import InvalidForeignID, RecordNotFound, VersionConflict, WorkflowInProgress
from .._event import Header
from .._ids import MAX_FOREIGN_ID_BYTES
from .._protocols import Order, RecordFilter, RecordStore, RecordWrite
from .._record import Meta, Record
from .._runstate import RunState
from ._fixtures import (
    FOREIGN_ID,
    SECOND_WORKFLOW,
    WAIT_TIMEOUT,
    WORKFLOW,
    Status,
    assert_record_equal,
    dummy_record,
    insert,
    outbox_event,
    update,
    within,
)

__all__ = ["RecordStoreSuite"]

_BASE_TIME = datetime(2023, 4, 9, 8, 30, 0, 123456, tzinfo=UTC)


def _at(index: int) -> datetime:
    """A distinct creation time per index, increasing (microseconds included on purpose)."""
    return _BASE_TIME + timedelta(milliseconds=index, microseconds=index % 7)


async def _seed(store: RecordStore, records: Iterable[Record]) -> list[Record]:
    stored: list[Record] = []
    for record in records:
        await store.store(insert(record))
        stored.append(record)
    return stored


def _run_ids(records: Sequence[Record]) -> list[str]:
    return [r.run_id for r in records]


def _longest_foreign_id() -> str:
    """A foreign ID of exactly ``MAX_FOREIGN_ID_BYTES`` UTF-8 bytes: random (so no index
    compresses it), with 2-, 3- and 4-byte characters."""
    head = "Ünï€😀-"  # 2 + 1 + 2 + 3 + 4 + 1 bytes
    body = "".join(uuid.uuid4().hex for _ in range(MAX_FOREIGN_ID_BYTES // 32 + 1))
    fid = head + body[: MAX_FOREIGN_ID_BYTES - len(head.encode())]
    assert len(fid.encode()) == MAX_FOREIGN_ID_BYTES
    return fid


_REFUSED_FOREIGN_IDS = {
    "one byte too long": "x" * (MAX_FOREIGN_ID_BYTES + 1),
    "too long in UTF-8": "x" * (MAX_FOREIGN_ID_BYTES - 1) + "é",
    "NUL": "order\x007",
    "lone high surrogate": "\ud800",
    "lone low surrogate in text": "order-\udfff-7",
}


class StoreCases:
    """What every record-store suite shares: the ``store`` fixture to override, and the
    bound on waits."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    wait_timeout: ClassVar[float] = WAIT_TIMEOUT
    """Seconds a case waits for a wake-up before failing."""

    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[RecordStore]:
        """A fresh, empty store for one case: override this fixture."""
        raise NotImplementedError("override the `store` fixture to yield a fresh RecordStore")
        yield  # pragma: no cover


class RecordStoreSuite(StoreCases):
    """Conformance cases every ``RecordStore`` must pass.

    Subclass it in a test module named ``test_*.py`` as ``Test<YourStore>`` and override
    the ``store`` fixture to yield a fresh, empty store per case (and close it afterwards)::

        class TestMyStore(RecordStoreSuite):
            @pytest.fixture
            async def store(self) -> AsyncIterator[RecordStore]:
                store = await MyStore.connect(...)
                yield store
                await store.close()

    The cases are asyncio tests: with pytest-asyncio's ``asyncio_mode = "auto"`` the
    override above works as written; in strict mode decorate it with
    ``@pytest_asyncio.fixture`` instead. ``wait_timeout`` bounds every wait.
    """

    # ------------------------------------------------------------ latest, lookup, store

    async def test_latest_returns_the_stored_record(self, store: RecordStore) -> None:
        record = dummy_record()
        await store.store(insert(record))

        assert_record_equal(await store.latest(WORKFLOW, FOREIGN_ID), record)

    async def test_latest_returns_the_updated_record_after_a_re_store(
        self, store: RecordStore
    ) -> None:
        record = dummy_record()
        await store.store(insert(record))

        write = update(record, status=Status.END, run_state=RunState.COMPLETED)
        await store.store(write)

        assert_record_equal(await store.latest(WORKFLOW, FOREIGN_ID), write.record)

    async def test_lookup_returns_the_stored_record(self, store: RecordStore) -> None:
        record = dummy_record()
        await store.store(insert(record))

        assert_record_equal(await store.lookup(record.run_id), record)

    async def test_re_storing_a_looked_up_record_updates_it(self, store: RecordStore) -> None:
        record = dummy_record()
        await store.store(insert(record))

        middle = update(await store.lookup(record.run_id), status=Status.MIDDLE)
        await store.store(middle)
        assert_record_equal(await store.lookup(record.run_id), middle.record)

        end = update(await store.lookup(record.run_id), status=Status.END, object=b'{"n":2}')
        await store.store(end)
        got = await store.lookup(record.run_id)
        assert_record_equal(got, end.record)
        assert got.version == 3

    async def test_stored_record_round_trips_every_field(self, store: RecordStore) -> None:
        created = datetime(2023, 4, 9, 8, 30, 0, 654321, tzinfo=UTC)
        record = dummy_record(
            foreign_id="Ünïcode fid / with spaces",
            status=Status.MIDDLE,
            run_state=RunState.PAUSED,
            created_at=created,
        ).replace(
            object='{"emoji":"☃","n":1}'.encode(),
            updated_at=created + timedelta(seconds=5, microseconds=1),
            meta=Meta(
                run_state_reason="paused: manual check",
                status_description="Middle",
                version=1,
                trace_origin="shop/orders.py:42",
                reached=(Status.STARTED, Status.MIDDLE),
            ),
        )
        await store.store(insert(record))

        assert_record_equal(await store.lookup(record.run_id), record)
        assert_record_equal(await store.latest(WORKFLOW, record.foreign_id), record)
        listed = await store.list(WORKFLOW)
        assert len(listed) == 1
        assert_record_equal(listed[0], record)

    async def test_latest_is_the_most_recently_created_run(self, store: RecordStore) -> None:
        first = dummy_record(created_at=_at(0))
        await store.store(insert(first))
        await store.store(update(first, run_state=RunState.COMPLETED, updated_at=_at(0)))
        second = dummy_record(created_at=_at(1))
        await store.store(insert(second))
        second_done = update(second, run_state=RunState.COMPLETED, updated_at=_at(2))
        await store.store(second_done)
        # Updating the older run later does not make it the latest.
        first_now = await store.lookup(first.run_id)
        await store.store(update(first_now, status=Status.END, updated_at=_at(3600_000)))

        latest = await store.latest(WORKFLOW, FOREIGN_ID)

        assert latest.run_id == second.run_id
        assert_record_equal(latest, second_done.record)

    async def test_lookup_of_an_unknown_run_raises_record_not_found(
        self, store: RecordStore
    ) -> None:
        await store.store(insert(dummy_record()))

        with pytest.raises(RecordNotFound) as info:
            await store.lookup("no-such-run-id")
        assert isinstance(info.value, LookupError)

    async def test_latest_of_an_unknown_foreign_id_raises_record_not_found(
        self, store: RecordStore
    ) -> None:
        await store.store(insert(dummy_record()))

        with pytest.raises(RecordNotFound):
            await store.latest(WORKFLOW, "someone else")
        with pytest.raises(RecordNotFound):
            await store.latest(SECOND_WORKFLOW, FOREIGN_ID)

    # ------------------------------------------------------------ compare-and-set

    async def test_update_with_stale_version_raises_version_conflict(
        self, store: RecordStore
    ) -> None:
        record = dummy_record()
        await store.store(insert(record))
        current = update(record, status=Status.MIDDLE)
        await store.store(current)
        outbox_before = await store.list_outbox_events(WORKFLOW, 1000)

        with pytest.raises(VersionConflict):
            await store.store(update(record, status=Status.END))  # expects version 1

        assert_record_equal(await store.lookup(record.run_id), current.record)
        assert await store.list_outbox_events(WORKFLOW, 1000) == outbox_before

    async def test_update_expecting_a_version_not_yet_stored_raises_version_conflict(
        self, store: RecordStore
    ) -> None:
        record = dummy_record()
        await store.store(insert(record))
        ahead = update(record, status=Status.MIDDLE)
        ahead = RecordWrite(ahead.record, ahead.outbox, expected_version=5)

        with pytest.raises(VersionConflict):
            await store.store(ahead)

        assert_record_equal(await store.lookup(record.run_id), record)
        assert len(await store.list_outbox_events(WORKFLOW, 1000)) == 1

    async def test_insert_of_an_existing_run_id_raises_version_conflict(
        self, store: RecordStore
    ) -> None:
        record = dummy_record()
        await store.store(insert(record))

        again = record.replace(status=Status.END, run_state=RunState.COMPLETED)
        with pytest.raises(VersionConflict):
            await store.store(insert(again))

        assert_record_equal(await store.lookup(record.run_id), record)
        assert len(await store.list_outbox_events(WORKFLOW, 1000)) == 1

    async def test_update_of_an_unknown_run_raises_version_conflict(
        self, store: RecordStore
    ) -> None:
        never_stored = dummy_record()

        with pytest.raises(VersionConflict):
            await store.store(update(never_stored, status=Status.MIDDLE))

        with pytest.raises(RecordNotFound):
            await store.lookup(never_stored.run_id)
        assert list(await store.list_outbox_events(WORKFLOW, 1000)) == []

    # ------------------------------------------------------------ one active run

    @pytest.mark.parametrize(
        "active_state", [RunState.INITIATED, RunState.RUNNING, RunState.PAUSED]
    )
    async def test_second_active_run_for_a_foreign_id_raises_workflow_in_progress(
        self, store: RecordStore, active_state: RunState
    ) -> None:
        first = dummy_record()
        await store.store(insert(first))
        if active_state is not RunState.INITIATED:
            await store.store(update(first, run_state=active_state))
        outbox_before = await store.list_outbox_events(WORKFLOW, 1000)

        second = dummy_record()
        with pytest.raises(WorkflowInProgress):
            await store.store(insert(second))

        with pytest.raises(RecordNotFound):
            await store.lookup(second.run_id)
        assert (await store.latest(WORKFLOW, FOREIGN_ID)).run_id == first.run_id
        assert await store.list_outbox_events(WORKFLOW, 1000) == outbox_before

    @pytest.mark.parametrize("finished_state", [RunState.COMPLETED, RunState.CANCELLED])
    async def test_new_run_is_allowed_once_the_active_run_finishes(
        self, store: RecordStore, finished_state: RunState
    ) -> None:
        first = dummy_record(created_at=_at(0))
        await store.store(insert(first))
        await store.store(update(first, run_state=finished_state))

        second = dummy_record(created_at=_at(1))
        await store.store(insert(second))

        assert_record_equal(await store.latest(WORKFLOW, FOREIGN_ID), second)

    async def test_active_runs_of_one_foreign_id_are_allowed_in_different_workflows(
        self, store: RecordStore
    ) -> None:
        first = dummy_record(WORKFLOW)
        second = dummy_record(SECOND_WORKFLOW)

        await store.store(insert(first))
        await store.store(insert(second))

        assert_record_equal(await store.latest(WORKFLOW, FOREIGN_ID), first)
        assert_record_equal(await store.latest(SECOND_WORKFLOW, FOREIGN_ID), second)

    # ------------------------------------------------------------ foreign IDs

    async def test_a_foreign_id_at_the_length_limit_round_trips(self, store: RecordStore) -> None:
        record = dummy_record(foreign_id=_longest_foreign_id())
        await store.store(insert(record))
        await store.store(update(record, status=Status.MIDDLE))

        latest = await store.latest(WORKFLOW, record.foreign_id)
        assert latest.foreign_id == record.foreign_id
        assert latest.version == 2
        listed = await store.list(WORKFLOW, filter=RecordFilter(foreign_ids=(record.foreign_id,)))
        assert _run_ids(listed) == [record.run_id]
        with pytest.raises(WorkflowInProgress):
            await store.store(insert(dummy_record(foreign_id=record.foreign_id)))

    @pytest.mark.parametrize("case", sorted(_REFUSED_FOREIGN_IDS))
    async def test_foreign_ids_no_backend_can_store_are_refused(
        self, store: RecordStore, case: str
    ) -> None:
        bad = dummy_record(foreign_id=_REFUSED_FOREIGN_IDS[case])
        good = dummy_record(foreign_id="fine")

        with pytest.raises(InvalidForeignID) as raised:
            await store.store(insert(bad))
        assert isinstance(raised.value, ValueError)
        outcomes = await store.store_many([insert(bad), insert(good)])
        with pytest.raises(InvalidForeignID):
            await store.latest(WORKFLOW, bad.foreign_id)
        with pytest.raises(InvalidForeignID):
            await store.list(WORKFLOW, filter=RecordFilter(foreign_ids=(bad.foreign_id,)))

        assert isinstance(outcomes[0], InvalidForeignID)
        assert outcomes[1] is None
        with pytest.raises(RecordNotFound):
            await store.lookup(bad.run_id)
        assert _run_ids(await store.list(WORKFLOW)) == [good.run_id]
        outbox = await store.list_outbox_events(WORKFLOW, 1000)
        assert [e.run_id for e in outbox] == [good.run_id]

    # ------------------------------------------------------------ store_many

    async def test_store_many_returns_an_outcome_per_write_and_applies_the_others(
        self, store: RecordStore
    ) -> None:
        existing = dummy_record(foreign_id="existing")
        active = dummy_record(foreign_id="busy")
        await _seed(store, [existing, active])
        fresh = dummy_record(foreign_id="fresh")
        stale = update(existing, status=Status.MIDDLE)
        stale = RecordWrite(stale.record, stale.outbox, expected_version=7)
        blocked = dummy_record(foreign_id="busy")
        also_fresh = dummy_record(foreign_id="also fresh")
        moved = update(active, status=Status.MIDDLE)

        outcomes = await store.store_many(
            [insert(fresh), stale, insert(blocked), insert(also_fresh), moved]
        )

        assert len(outcomes) == 5
        assert outcomes[0] is None
        assert isinstance(outcomes[1], VersionConflict)
        assert isinstance(outcomes[2], WorkflowInProgress)
        assert outcomes[3] is None
        assert outcomes[4] is None
        assert_record_equal(await store.lookup(fresh.run_id), fresh)
        assert_record_equal(await store.lookup(existing.run_id), existing)
        with pytest.raises(RecordNotFound):
            await store.lookup(blocked.run_id)
        assert_record_equal(await store.lookup(also_fresh.run_id), also_fresh)
        assert_record_equal(await store.lookup(active.run_id), moved.record)
        outbox = await store.list_outbox_events(WORKFLOW, 1000)
        assert [e.run_id for e in outbox] == [
            existing.run_id,
            active.run_id,
            fresh.run_id,
            also_fresh.run_id,
            active.run_id,
        ]

    async def test_store_many_of_no_writes_returns_no_outcomes(self, store: RecordStore) -> None:
        assert list(await store.store_many([])) == []

    # ------------------------------------------------------------ outbox

    async def test_store_writes_exactly_one_outbox_event_with_the_record(
        self, store: RecordStore
    ) -> None:
        record = dummy_record()
        event = outbox_event(record, **{"x-custom header": "any value ☃ =;,"})
        await store.store(RecordWrite(record, event, expected_version=0))

        events = await store.list_outbox_events(WORKFLOW, 1000)

        assert len(events) == 1
        got = events[0]
        assert "outbox-id-" in got.id
        assert got.id == event.id
        assert got.workflow_name == WORKFLOW
        assert got.run_id == record.run_id
        assert got.type == Status.STARTED
        assert got.headers[Header.TOPIC] == "my_workflow-1"
        assert got.topic == "my_workflow-1"
        assert got.headers[Header.FOREIGN_ID] == FOREIGN_ID
        assert got.headers[Header.WORKFLOW_NAME] == WORKFLOW
        assert dict(got.headers) == dict(event.headers)
        assert got.created_at == event.created_at

    async def test_every_write_adds_its_own_outbox_event_oldest_first(
        self, store: RecordStore
    ) -> None:
        record = dummy_record()
        first = insert(record)
        await store.store(first)
        second = update(record, status=Status.MIDDLE)
        await store.store(second)

        events = await store.list_outbox_events(WORKFLOW, 1000)

        assert [e.id for e in events] == [first.outbox.id, second.outbox.id]
        assert events[1].headers[Header.RECORD_VERSION] == "2"
        assert events[1].type == Status.MIDDLE

    async def test_list_outbox_events_is_per_workflow_and_limited(self, store: RecordStore) -> None:
        writes = [insert(dummy_record(foreign_id=f"fid-{i}")) for i in range(3)]
        for write in writes:
            await store.store(write)
        other = insert(dummy_record(SECOND_WORKFLOW))
        await store.store(other)

        assert [e.id for e in await store.list_outbox_events(WORKFLOW, 2)] == [
            w.outbox.id for w in writes[:2]
        ]
        assert [e.id for e in await store.list_outbox_events(SECOND_WORKFLOW, 10)] == [
            other.outbox.id
        ]
        assert list(await store.list_outbox_events("unknown_workflow", 10)) == []

    async def test_delete_outbox_events_removes_them(self, store: RecordStore) -> None:
        record = dummy_record()
        await store.store(insert(record))
        await store.lookup(record.run_id)
        events = await store.list_outbox_events(WORKFLOW, 1000)
        assert len(events) == 1

        await store.delete_outbox_events([events[0].id])

        assert list(await store.list_outbox_events(WORKFLOW, 1000)) == []
        assert_record_equal(await store.lookup(record.run_id), record)

    async def test_delete_outbox_events_ignores_unknown_ids(self, store: RecordStore) -> None:
        first = insert(dummy_record(foreign_id="a"))
        second = insert(dummy_record(foreign_id="b"))
        await store.store(first)
        await store.store(second)

        await store.delete_outbox_events(["outbox-id-unknown", first.outbox.id])

        assert [e.id for e in await store.list_outbox_events(WORKFLOW, 1000)] == [second.outbox.id]

    async def test_wait_for_outbox_returns_promptly_after_a_write(self, store: RecordStore) -> None:
        waiter = asyncio.create_task(store.wait_for_outbox(WORKFLOW, 60.0))
        try:
            for _ in range(5):  # let the waiter start waiting
                await asyncio.sleep(0)

            await store.store(insert(dummy_record()))

            await within(waiter, self.wait_timeout, "wait_for_outbox to return")
        finally:
            waiter.cancel()

    async def test_wait_for_outbox_returns_at_its_timeout_without_writes(
        self, store: RecordStore
    ) -> None:
        await within(
            store.wait_for_outbox(WORKFLOW, 0.05), self.wait_timeout, "wait_for_outbox's timeout"
        )

    # ------------------------------------------------------------ close

    async def test_close_is_idempotent(self, store: RecordStore) -> None:
        # Given a store that has applied a write
        await store.store(insert(dummy_record()))

        # When it is closed twice, the second close returns (None) instead of raising
        await store.close()
        await store.close()

    # ------------------------------------------------------------ list

    async def test_list_of_an_empty_store_returns_nothing(self, store: RecordStore) -> None:
        assert list(await store.list()) == []
        assert list(await store.list(WORKFLOW, order=Order.DESC)) == []

    async def test_list_without_workflow_name_pages_across_workflows(
        self, store: RecordStore
    ) -> None:
        records = await _seed(
            store,
            (
                dummy_record(
                    WORKFLOW if i <= 500 else SECOND_WORKFLOW,
                    run_state=RunState.COMPLETED,  # many finished runs of one foreign ID
                    created_at=_at(i),
                )
                for i in range(1000)
            ),
        )
        ids = _run_ids(records)

        page1 = await store.list("", offset=0, limit=53)
        page2 = await store.list("", offset=53, limit=100)
        page3 = await store.list("", offset=153, limit=847)
        tail = await store.list("", offset=950, limit=1000)
        tail_desc = await store.list("", offset=950, limit=1000, order=Order.DESC)

        assert len(page1) == 53
        assert len(page2) == 100
        assert page2[0].run_id != page1[-1].run_id
        assert len(page3) == 847
        assert _run_ids(page1) + _run_ids(page2) + _run_ids(page3) == ids
        assert _run_ids(tail) == ids[950:]
        assert _run_ids(tail_desc) == list(reversed(ids[:50]))
        assert {r.workflow_name for r in page3} == {WORKFLOW, SECOND_WORKFLOW}

    async def test_list_desc_pages_newest_first(self, store: RecordStore) -> None:
        records = await _seed(
            store, (dummy_record(foreign_id=f"fid-{i}", created_at=_at(i)) for i in range(10))
        )
        newest_first = list(reversed(_run_ids(records)))

        first = await store.list(WORKFLOW, offset=0, limit=4, order=Order.DESC)
        second = await store.list(WORKFLOW, offset=4, limit=4, order=Order.DESC)
        last = await store.list(WORKFLOW, offset=8, limit=4, order=Order.DESC)

        assert _run_ids(first) == newest_first[0:4]
        assert _run_ids(second) == newest_first[4:8]
        assert _run_ids(last) == newest_first[8:10]

    async def test_list_orders_runs_created_at_the_same_time_by_insertion(
        self, store: RecordStore
    ) -> None:
        records = await _seed(
            store, (dummy_record(foreign_id=f"fid-{i}", created_at=_at(0)) for i in range(5))
        )

        assert _run_ids(await store.list(WORKFLOW)) == _run_ids(records)
        assert _run_ids(await store.list(WORKFLOW, order=Order.DESC)) == list(
            reversed(_run_ids(records))
        )

    async def test_list_offset_past_the_end_returns_nothing(self, store: RecordStore) -> None:
        await _seed(store, (dummy_record(foreign_id=f"fid-{i}") for i in range(3)))

        assert list(await store.list(WORKFLOW, offset=3, limit=10)) == []
        assert list(await store.list(WORKFLOW, offset=100, limit=10, order=Order.DESC)) == []

    async def test_list_filters_by_workflow_name(self, store: RecordStore) -> None:
        records = await _seed(
            store,
            (
                dummy_record(
                    (WORKFLOW, SECOND_WORKFLOW)[i % 2],
                    foreign_id=f"fid-{i}",
                    created_at=_at(i),
                )
                for i in range(200)
            ),
        )

        listed = await store.list(WORKFLOW, offset=0, limit=2000)

        assert len(listed) == 100
        assert all(r.workflow_name == WORKFLOW for r in listed)
        assert _run_ids(listed) == [r.run_id for r in records if r.workflow_name == WORKFLOW]

    async def test_list_filters_by_foreign_id(self, store: RecordStore) -> None:
        await _seed(
            store,
            (
                dummy_record(
                    foreign_id=("first", "second")[i % 2],
                    run_state=RunState.COMPLETED,
                    created_at=_at(i),
                )
                for i in range(40)
            ),
        )

        first = await store.list(WORKFLOW, limit=2000, filter=RecordFilter(foreign_ids=("first",)))
        second = await store.list(WORKFLOW, limit=100, filter=RecordFilter(foreign_ids=("second",)))
        both = await store.list(
            WORKFLOW, limit=100, filter=RecordFilter(foreign_ids=("first", "second"))
        )
        random = await store.list(WORKFLOW, limit=100, filter=RecordFilter(foreign_ids=("random",)))

        assert len(first) == 20
        assert all(r.foreign_id == "first" for r in first)
        assert len(second) == 20
        assert all(r.foreign_id == "second" for r in second)
        assert len(both) == 40
        assert list(random) == []

    async def _seed_run_states(self, store: RecordStore) -> dict[RunState, int]:
        counts = {
            RunState.INITIATED: 10,
            RunState.RUNNING: 100,
            RunState.COMPLETED: 20,
            RunState.PAUSED: 3,
            RunState.CANCELLED: 1,
            RunState.DATA_DELETED: 15,
        }
        states = [state for state, count in counts.items() for _ in range(count)]
        await _seed(
            store,
            (
                dummy_record(foreign_id=f"fid-{i}", run_state=state, created_at=_at(i))
                for i, state in enumerate(states)
            ),
        )
        return counts

    async def test_list_filters_by_a_single_run_state(self, store: RecordStore) -> None:
        counts = await self._seed_run_states(store)

        for state, count in counts.items():
            listed = await store.list(
                WORKFLOW, limit=2000, filter=RecordFilter(run_states=(state,))
            )
            assert len(listed) == count, f"run state {state}"
            assert all(r.run_state == state for r in listed), f"run state {state}"

    async def test_list_filters_by_several_run_states(self, store: RecordStore) -> None:
        await self._seed_run_states(store)

        listed = await store.list(
            WORKFLOW,
            limit=2000,
            filter=RecordFilter(run_states=(RunState.RUNNING, RunState.PAUSED)),
        )

        assert len(listed) == 103
        assert all(r.run_state in (RunState.RUNNING, RunState.PAUSED) for r in listed)

    async def test_list_filters_by_status(self, store: RecordStore) -> None:
        counts = {Status.STARTED: 10, Status.MIDDLE: 100, Status.END: 20}
        statuses = [status for status, count in counts.items() for _ in range(count)]
        await _seed(
            store,
            (
                dummy_record(foreign_id=f"fid-{i}", status=status, created_at=_at(i))
                for i, status in enumerate(statuses)
            ),
        )

        for status, count in counts.items():
            listed = await store.list(
                WORKFLOW, limit=100, filter=RecordFilter(statuses=(int(status),))
            )
            assert len(listed) == count, f"status {status!r}"
            assert all(r.status == status for r in listed), f"status {status!r}"

    async def test_list_filters_by_created_at_strictly(self, store: RecordStore) -> None:
        now = _at(0)
        await _seed(
            store, (dummy_record(foreign_id=f"fid-{i}", created_at=now) for i in range(100))
        )
        minute = timedelta(minutes=1)

        between = RecordFilter(created_after=now - minute, created_before=now + minute)
        assert len(await store.list(WORKFLOW, limit=1000, filter=between)) == 100
        after = RecordFilter(created_after=now + minute)
        assert list(await store.list(WORKFLOW, limit=1000, filter=after)) == []
        before = RecordFilter(created_before=now - minute)
        assert list(await store.list(WORKFLOW, limit=1000, filter=before)) == []
        # Strict: a run created exactly at the bound is excluded.
        at_after = RecordFilter(created_after=now)
        assert list(await store.list(WORKFLOW, limit=1000, filter=at_after)) == []
        at_before = RecordFilter(created_before=now)
        assert list(await store.list(WORKFLOW, limit=1000, filter=at_before)) == []

    async def test_list_filters_combine_with_and(self, store: RecordStore) -> None:
        records = await _seed(
            store,
            (
                dummy_record(
                    foreign_id=("first", "second")[i % 2],
                    status=(Status.STARTED, Status.END)[(i // 2) % 2],
                    run_state=RunState.COMPLETED,
                    created_at=_at(i),
                )
                for i in range(12)
            ),
        )

        listed = await store.list(
            WORKFLOW,
            filter=RecordFilter(foreign_ids=("first",), statuses=(int(Status.END),)),
        )

        want = [r.run_id for r in records if r.foreign_id == "first" and r.status == Status.END]
        assert len(want) == 3
        assert _run_ids(listed) == want
