"""The ``TimeoutStore`` conformance suite (luno-behaviour.md §2.4, plus conveyor's rules).

Over 400 lines on purpose: one suite is one class of independent cases, and keeping a
contract's cases together is what lets a reader check the suite against the contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
import pytest_asyncio

from .._errors import TimeoutNotFound
from .._protocols import TimeoutRecord, TimeoutStore
from ._fixtures import ALLOWED_TIME_DEVIATION, WAIT_TIMEOUT, within

__all__ = ["TimeoutStoreSuite"]

WORKFLOW = "example"
OTHER_WORKFLOW = "another example"
FOREIGN_ID = "andrew"
STATUS = 1
OTHER_STATUS = 2

_BASE_TIME = datetime(2023, 4, 9, 8, 30, 0, 123456, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _run_ids(timeouts: Sequence[TimeoutRecord]) -> list[str]:
    return [t.run_id for t in timeouts]


def _ids(timeouts: Sequence[TimeoutRecord]) -> list[int]:
    return [t.id for t in timeouts]


def _close_to(got: datetime, want: datetime) -> bool:
    return abs(got - want) <= ALLOWED_TIME_DEVIATION


async def _seed(store: TimeoutStore, now: datetime) -> None:
    """luno's seed: three timeouts of ``example``/``andrew``, runs "1" to "3", due an hour ago."""
    ids = [
        await store.create(
            WORKFLOW, FOREIGN_ID, run_id, STATUS, now - timedelta(hours=1), created_at=now
        )
        for run_id in ("1", "2", "3")
    ]
    assert ids == [1, 2, 3], "a fresh store must assign the IDs 1, 2, 3"


def _expect(timeouts: Sequence[TimeoutRecord], run_ids: Sequence[str], now: datetime) -> None:
    """luno's ``expect``: by position, the seeded timeouts of ``run_ids`` (so in ID order)."""
    assert _run_ids(timeouts) == list(run_ids)
    for timeout, run_id in zip(timeouts, run_ids, strict=True):
        assert timeout.id == int(run_id)
        assert timeout.workflow_name == WORKFLOW
        assert timeout.foreign_id == FOREIGN_ID
        assert timeout.status == STATUS
        assert not timeout.completed
        assert _close_to(timeout.expire_at, now - timedelta(hours=1)), timeout.expire_at
        assert _close_to(timeout.created_at, now), timeout.created_at


async def _yield_to_others(times: int = 10) -> None:
    """Let other tasks run up to their next real wait (no time passes)."""
    for _ in range(times):
        await asyncio.sleep(0)


class TimeoutStoreSuite:
    """Conformance cases every ``TimeoutStore`` must pass.

    Subclass it in a test module as ``Test<YourStore>`` and override the
    ``timeout_store`` fixture to yield a fresh, empty store per case (IDs count from 1
    in it) and close it afterwards::

        class TestMyTimeoutStore(TimeoutStoreSuite):
            @pytest.fixture
            async def timeout_store(self) -> AsyncIterator[TimeoutStore]:
                store = await MyTimeoutStore.connect(...)
                yield store
                await store.close()

    With pytest-asyncio's ``asyncio_mode = "auto"`` the override works as written; in
    strict mode decorate it with ``@pytest_asyncio.fixture``. ``wait_timeout`` bounds
    every wait.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    wait_timeout: ClassVar[float] = WAIT_TIMEOUT
    """Seconds a case waits for a wake-up before failing."""

    @pytest_asyncio.fixture
    async def timeout_store(self) -> AsyncIterator[TimeoutStore]:
        """A fresh, empty timeout store for one case: override this fixture."""
        raise NotImplementedError(
            "override the `timeout_store` fixture to yield a fresh TimeoutStore"
        )
        yield  # pragma: no cover

    # ------------------------------------------------------------ luno's cases (§2.4)

    async def test_complete_and_cancel_leave_only_the_remaining_timeout_valid(
        self, timeout_store: TimeoutStore
    ) -> None:
        now = datetime.now(UTC)
        await _seed(timeout_store, now)

        await timeout_store.complete(2)
        await timeout_store.cancel(3)

        _expect(await timeout_store.list_valid(WORKFLOW, STATUS, now), ["1"], now)

    async def test_list_returns_the_timeouts_in_id_order(self, timeout_store: TimeoutStore) -> None:
        now = datetime.now(UTC)
        await _seed(timeout_store, now)

        _expect(await timeout_store.list(WORKFLOW), ["1", "2", "3"], now)

    # ------------------------------------------------------------ create

    async def test_timeout_round_trips_every_field(self, timeout_store: TimeoutStore) -> None:
        expire_at = _BASE_TIME + timedelta(hours=1, microseconds=1)
        timeout_id = await timeout_store.create(
            WORKFLOW,
            "Ünïcode fid / with spaces",
            "run-☃",
            OTHER_STATUS,
            expire_at,
            created_at=_BASE_TIME,
            record_version=7,
            index=2,
        )

        (got,) = await timeout_store.list(WORKFLOW)

        assert got == TimeoutRecord(
            id=timeout_id,
            workflow_name=WORKFLOW,
            foreign_id="Ünïcode fid / with spaces",
            run_id="run-☃",
            status=OTHER_STATUS,
            expire_at=expire_at,
            created_at=_BASE_TIME,
            completed=False,
            record_version=7,
            index=2,
        )
        assert got.expire_at.tzinfo is not None, "expire_at must be timezone-aware"
        assert got.created_at.tzinfo is not None, "created_at must be timezone-aware"

    async def test_ids_increase_from_one_across_workflows(
        self, timeout_store: TimeoutStore
    ) -> None:
        ids = [
            await timeout_store.create(
                (WORKFLOW, OTHER_WORKFLOW)[i % 2],
                FOREIGN_ID,
                f"run-{i}",
                STATUS,
                _BASE_TIME,
                created_at=_BASE_TIME,
            )
            for i in range(5)
        ]

        assert ids[0] == 1
        assert ids == sorted(set(ids)), f"ids not strictly increasing: {ids}"

    async def test_create_is_idempotent_and_returns_the_existing_id(
        self, timeout_store: TimeoutStore
    ) -> None:
        first = await timeout_store.create(
            WORKFLOW,
            FOREIGN_ID,
            "run-1",
            STATUS,
            _BASE_TIME,
            created_at=_BASE_TIME,
            record_version=3,
            index=1,
        )

        again = await timeout_store.create(
            WORKFLOW,
            FOREIGN_ID,
            "run-1",
            STATUS,
            _BASE_TIME + timedelta(hours=1),
            created_at=_BASE_TIME + timedelta(minutes=1),
            record_version=3,
            index=1,
        )

        assert again == first
        (kept,) = await timeout_store.list(WORKFLOW)
        assert kept.id == first
        assert kept.expire_at == _BASE_TIME, "a repeated create must not change the timeout"
        tomorrow = _BASE_TIME + timedelta(days=1)
        assert _ids(await timeout_store.list_valid(WORKFLOW, STATUS, tomorrow)) == [first]

    async def test_create_of_a_completed_timeout_returns_its_id_and_does_not_revive_it(
        self, timeout_store: TimeoutStore
    ) -> None:
        first = await timeout_store.create(
            WORKFLOW, FOREIGN_ID, "run-1", STATUS, _BASE_TIME, created_at=_BASE_TIME
        )
        await timeout_store.complete(first)

        again = await timeout_store.create(
            WORKFLOW, FOREIGN_ID, "run-1", STATUS, _BASE_TIME, created_at=_BASE_TIME
        )

        assert again == first
        assert list(await timeout_store.list(WORKFLOW)) == []
        tomorrow = _BASE_TIME + timedelta(days=1)
        assert list(await timeout_store.list_valid(WORKFLOW, STATUS, tomorrow)) == []

    async def test_create_with_another_version_index_status_run_or_workflow_is_a_new_timeout(
        self, timeout_store: TimeoutStore
    ) -> None:
        async def create(
            workflow: str = WORKFLOW,
            run_id: str = "run-1",
            status: int = STATUS,
            record_version: int = 1,
            index: int = 0,
        ) -> int:
            return await timeout_store.create(
                workflow,
                FOREIGN_ID,
                run_id,
                status,
                _BASE_TIME,
                created_at=_BASE_TIME,
                record_version=record_version,
                index=index,
            )

        ids = [
            await create(),
            await create(record_version=2),
            await create(index=1),
            await create(status=OTHER_STATUS),
            await create(run_id="run-2"),
            await create(workflow=OTHER_WORKFLOW),
        ]

        assert len(set(ids)) == 6, f"expected six distinct timeouts, got ids {ids}"
        assert _ids(await timeout_store.list(WORKFLOW)) == ids[:5]
        assert _ids(await timeout_store.list(OTHER_WORKFLOW)) == ids[5:]

    # ------------------------------------------------------------ complete and cancel

    async def test_complete_of_an_unknown_id_raises_timeout_not_found(
        self, timeout_store: TimeoutStore
    ) -> None:
        with pytest.raises(TimeoutNotFound) as info:
            await timeout_store.complete(1)  # empty store
        assert isinstance(info.value, LookupError)

        now = datetime.now(UTC)
        await _seed(timeout_store, now)
        with pytest.raises(TimeoutNotFound):
            await timeout_store.complete(404)

        _expect(await timeout_store.list(WORKFLOW), ["1", "2", "3"], now)

    async def test_cancel_of_an_unknown_id_raises_timeout_not_found(
        self, timeout_store: TimeoutStore
    ) -> None:
        with pytest.raises(TimeoutNotFound) as info:
            await timeout_store.cancel(1)  # empty store
        assert isinstance(info.value, LookupError)

        now = datetime.now(UTC)
        await _seed(timeout_store, now)
        with pytest.raises(TimeoutNotFound):
            await timeout_store.cancel(404)

        # luno's memtimeoutstore removed the first timeout here: nothing may be removed.
        _expect(await timeout_store.list(WORKFLOW), ["1", "2", "3"], now)

    async def test_cancel_of_a_cancelled_timeout_raises_timeout_not_found(
        self, timeout_store: TimeoutStore
    ) -> None:
        timeout_id = await timeout_store.create(
            WORKFLOW, FOREIGN_ID, "run-1", STATUS, _BASE_TIME, created_at=_BASE_TIME
        )
        await timeout_store.cancel(timeout_id)

        with pytest.raises(TimeoutNotFound):
            await timeout_store.cancel(timeout_id)

    # ------------------------------------------------------------ list

    async def test_list_excludes_completed_and_cancelled_timeouts(
        self, timeout_store: TimeoutStore
    ) -> None:
        now = datetime.now(UTC)
        await _seed(timeout_store, now)

        await timeout_store.complete(2)
        _expect(await timeout_store.list(WORKFLOW), ["1", "3"], now)
        await timeout_store.cancel(3)
        _expect(await timeout_store.list(WORKFLOW), ["1"], now)

    async def test_list_is_per_workflow_in_id_order_whatever_the_expiry(
        self, timeout_store: TimeoutStore
    ) -> None:
        ids: dict[str, list[int]] = {WORKFLOW: [], OTHER_WORKFLOW: []}
        for i in range(6):
            workflow = (WORKFLOW, OTHER_WORKFLOW)[i % 2]
            expire_at = _BASE_TIME - timedelta(minutes=i)  # later IDs expire earlier
            ids[workflow].append(
                await timeout_store.create(
                    workflow,
                    FOREIGN_ID,
                    f"run-{i}",
                    (STATUS, OTHER_STATUS)[i // 3],
                    expire_at,
                    created_at=_BASE_TIME,
                )
            )

        assert _ids(await timeout_store.list(WORKFLOW)) == ids[WORKFLOW]
        assert _ids(await timeout_store.list(OTHER_WORKFLOW)) == ids[OTHER_WORKFLOW]
        assert list(await timeout_store.list("unknown workflow")) == []

    # ------------------------------------------------------------ list_valid

    async def test_list_valid_includes_a_timeout_due_exactly_now(
        self, timeout_store: TimeoutStore
    ) -> None:
        due = await timeout_store.create(
            WORKFLOW, FOREIGN_ID, "due", STATUS, _BASE_TIME, created_at=_BASE_TIME
        )
        await timeout_store.create(
            WORKFLOW,
            FOREIGN_ID,
            "not yet",
            STATUS,
            _BASE_TIME + _MICROSECOND,
            created_at=_BASE_TIME,
        )

        assert _ids(await timeout_store.list_valid(WORKFLOW, STATUS, _BASE_TIME)) == [due]
        before = _BASE_TIME - _MICROSECOND
        assert list(await timeout_store.list_valid(WORKFLOW, STATUS, before)) == []

    async def test_list_valid_returns_the_due_timeouts_in_id_order(
        self, timeout_store: TimeoutStore
    ) -> None:
        ids = [
            await timeout_store.create(
                WORKFLOW,
                FOREIGN_ID,
                f"run-{i}",
                STATUS,
                _BASE_TIME + timedelta(minutes=offset),
                created_at=_BASE_TIME,
            )
            for i, offset in enumerate((-1, -5, 10, -10, 5))
        ]

        due = await timeout_store.list_valid(WORKFLOW, STATUS, _BASE_TIME)
        later = await timeout_store.list_valid(WORKFLOW, STATUS, _BASE_TIME + timedelta(days=1))

        assert _ids(due) == [ids[0], ids[1], ids[3]]
        assert _ids(later) == ids

    async def test_list_valid_filters_by_workflow_and_status(
        self, timeout_store: TimeoutStore
    ) -> None:
        wanted = await timeout_store.create(
            WORKFLOW, FOREIGN_ID, "run-1", STATUS, _BASE_TIME, created_at=_BASE_TIME
        )
        other_status = await timeout_store.create(
            WORKFLOW, FOREIGN_ID, "run-1", OTHER_STATUS, _BASE_TIME, created_at=_BASE_TIME
        )
        other_workflow = await timeout_store.create(
            OTHER_WORKFLOW, FOREIGN_ID, "run-1", STATUS, _BASE_TIME, created_at=_BASE_TIME
        )
        now = _BASE_TIME + timedelta(hours=1)

        assert _ids(await timeout_store.list_valid(WORKFLOW, STATUS, now)) == [wanted]
        assert _ids(await timeout_store.list_valid(WORKFLOW, OTHER_STATUS, now)) == [other_status]
        assert _ids(await timeout_store.list_valid(OTHER_WORKFLOW, STATUS, now)) == [other_workflow]
        assert list(await timeout_store.list_valid(OTHER_WORKFLOW, OTHER_STATUS, now)) == []

    async def test_list_valid_excludes_completed_and_cancelled_timeouts(
        self, timeout_store: TimeoutStore
    ) -> None:
        now = datetime.now(UTC)
        await _seed(timeout_store, now)

        await timeout_store.complete(1)
        _expect(await timeout_store.list_valid(WORKFLOW, STATUS, now), ["2", "3"], now)
        await timeout_store.cancel(2)
        _expect(await timeout_store.list_valid(WORKFLOW, STATUS, now), ["3"], now)

    # ------------------------------------------------------------ next_expiry

    async def test_next_expiry_is_the_earliest_uncompleted_expiry_of_the_status(
        self, timeout_store: TimeoutStore
    ) -> None:
        assert await timeout_store.next_expiry(WORKFLOW, STATUS) is None

        async def create(
            offset_minutes: int, *, workflow: str = WORKFLOW, status: int = STATUS
        ) -> int:
            return await timeout_store.create(
                workflow,
                FOREIGN_ID,
                f"run-{offset_minutes}-{workflow}-{status}",
                status,
                _BASE_TIME + timedelta(minutes=offset_minutes),
                created_at=_BASE_TIME,
            )

        later = await create(30)
        earliest = await create(10)
        middle = await create(20)
        await create(1, status=OTHER_STATUS)  # earlier, but another status
        await create(2, workflow=OTHER_WORKFLOW)  # earlier, but another workflow

        assert await timeout_store.next_expiry(WORKFLOW, STATUS) == _BASE_TIME + timedelta(
            minutes=10
        )
        await timeout_store.complete(earliest)
        assert await timeout_store.next_expiry(WORKFLOW, STATUS) == _BASE_TIME + timedelta(
            minutes=20
        )
        await timeout_store.cancel(middle)
        assert await timeout_store.next_expiry(WORKFLOW, STATUS) == _BASE_TIME + timedelta(
            minutes=30
        )
        await timeout_store.complete(later)
        assert await timeout_store.next_expiry(WORKFLOW, STATUS) is None
        assert await timeout_store.next_expiry(WORKFLOW, OTHER_STATUS) == _BASE_TIME + timedelta(
            minutes=1
        )

    # ------------------------------------------------------------ wait_for_insert

    async def test_wait_for_insert_returns_promptly_after_a_create(
        self, timeout_store: TimeoutStore
    ) -> None:
        waiter = asyncio.create_task(timeout_store.wait_for_insert(WORKFLOW, 60.0))
        try:
            await _yield_to_others()  # let the waiter start waiting

            await timeout_store.create(
                WORKFLOW, FOREIGN_ID, "run-1", STATUS, _BASE_TIME, created_at=_BASE_TIME
            )

            await within(waiter, self.wait_timeout, "wait_for_insert to return")
        finally:
            waiter.cancel()

    async def test_wait_for_insert_returns_at_its_timeout_without_creates(
        self, timeout_store: TimeoutStore
    ) -> None:
        await within(
            timeout_store.wait_for_insert(WORKFLOW, 0.05),
            self.wait_timeout,
            "wait_for_insert's timeout",
        )

    # ------------------------------------------------------------ close

    async def test_close_is_idempotent(self, timeout_store: TimeoutStore) -> None:
        # Given a store that holds a timeout
        await timeout_store.create(
            WORKFLOW, FOREIGN_ID, "run-1", STATUS, _BASE_TIME, created_at=_BASE_TIME
        )

        # When it is closed twice, the second close returns (None) instead of raising
        await timeout_store.close()
        await timeout_store.close()
