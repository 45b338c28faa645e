"""Conformance suite of the ``ListsRuns`` capability: runs by a filter, a page at a time,
by keyset on (created_at, run ID) with an opaque cursor.

Run it beside ``RecordStoreSuite`` with the same ``store`` fixture. The first case checks
the claim (``isinstance``); the others the promises on ``ListsRuns``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from .._capabilities import ListsRuns, RunPage, RunQuery
from .._errors import AdapterError
from .._protocols import RecordStore
from .._record import Record
from .._runstate import RunState
from ._fixtures import (
    SECOND_WORKFLOW,
    WORKFLOW,
    Status,
    assert_record_equal,
    dummy_record,
    insert,
    update,
)
from ._record_store import StoreCases

__all__ = ["ListsRunsSuite"]

_BASE = datetime(2024, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)


def _at(index: int) -> datetime:
    """A distinct creation time per index, increasing, with microseconds."""
    return _BASE + timedelta(seconds=index, microseconds=index * 7)


def _lister(store: RecordStore) -> ListsRuns:
    assert isinstance(store, ListsRuns), f"{type(store).__name__} does not list runs"
    return store


async def _seed(store: RecordStore, records: Iterable[Record]) -> list[Record]:
    stored = []
    for record in records:
        await store.store(insert(record))
        stored.append(record)
    return stored


def _runs(count: int, workflow_name: str = WORKFLOW) -> list[Record]:
    """``count`` runs of distinct foreign IDs created at ``_at(0)``, ``_at(1)``, ..."""
    return [
        dummy_record(workflow_name, foreign_id=f"order-{i}", created_at=_at(i))
        for i in range(count)
    ]


def _ids(records: Sequence[Record]) -> list[str]:
    return [r.run_id for r in records]


def _newest_first(records: Iterable[Record]) -> list[str]:
    return [r.run_id for r in sorted(records, key=lambda r: (r.created_at, r.run_id), reverse=True)]


async def _every_page(
    store: RecordStore, query: RunQuery, limit: int
) -> tuple[list[RunPage], list[str]]:
    pages: list[RunPage] = []
    cursor: str | None = None
    while True:
        page = await _lister(store).list_runs(query, limit=limit, cursor=cursor)
        pages.append(page)
        assert len(pages) < 100, "the cursor never ends"
        if page.cursor is None:
            return pages, [r.run_id for p in pages for r in p.records]
        cursor = page.cursor


async def _listed(store: RecordStore, query: RunQuery) -> list[str]:
    return (await _every_page(store, query, 1000))[1]


class ListsRunsSuite(StoreCases):
    """Cases for record stores that list runs by a filter (``ListsRuns``).

    Override the ``store`` fixture as for ``RecordStoreSuite`` (the same store passes
    both). The web UI, its JSON API and the CLI list runs through this capability.
    """

    async def test_store_lists_runs(self, store: RecordStore) -> None:
        assert isinstance(store, ListsRuns)

    # ------------------------------------------------------------------ order, paging

    async def test_runs_are_listed_newest_first_by_default(self, store: RecordStore) -> None:
        # Given runs created one after the other, stored out of order
        runs = _runs(4)
        await _seed(store, [runs[2], runs[0], runs[3], runs[1]])

        # When the default query is listed
        page = await _lister(store).list_runs(RunQuery())

        # Then the newest comes first, every field as stored, and nothing follows
        assert _ids(page.records) == _ids(runs[::-1])
        for got, want in zip(page.records, runs[::-1], strict=True):
            assert_record_equal(got, want)
        assert page.cursor is None

    async def test_runs_are_listed_oldest_first_when_asked(self, store: RecordStore) -> None:
        runs = await _seed(store, _runs(4)[::-1])

        page = await _lister(store).list_runs(RunQuery(newest_first=False))

        assert _ids(page.records) == _ids(sorted(runs, key=lambda r: r.created_at))
        assert page.cursor is None

    async def test_pages_of_two_cover_seven_runs_once_each_newest_first(
        self, store: RecordStore
    ) -> None:
        runs = await _seed(store, _runs(7))

        pages, listed = await _every_page(store, RunQuery(), 2)

        assert [len(p.records) for p in pages] == [2, 2, 2, 1]
        assert listed == _ids(runs[::-1])

    async def test_pages_of_two_cover_seven_runs_once_each_oldest_first(
        self, store: RecordStore
    ) -> None:
        runs = await _seed(store, _runs(7))

        pages, listed = await _every_page(store, RunQuery(newest_first=False), 2)

        assert [len(p.records) for p in pages] == [2, 2, 2, 1]
        assert listed == _ids(runs)

    async def test_a_full_last_page_has_no_cursor(self, store: RecordStore) -> None:
        await _seed(store, _runs(4))

        pages, listed = await _every_page(store, RunQuery(), 2)

        assert [len(p.records) for p in pages] == [2, 2]
        assert len(listed) == 4

    async def test_an_empty_store_lists_nothing(self, store: RecordStore) -> None:
        page = await _lister(store).list_runs(RunQuery())

        assert (list(page.records), page.cursor) == ([], None)

    async def test_a_run_created_after_the_first_page_does_not_shift_later_pages(
        self, store: RecordStore
    ) -> None:
        # Given six runs and the first page of three, newest first
        runs = await _seed(store, _runs(6))
        first = await _lister(store).list_runs(RunQuery(), limit=3)
        assert _ids(first.records) == _ids(runs[:2:-1])

        # When a newer run is created, and then the page after the cursor is read
        await store.store(insert(dummy_record(foreign_id="newer", created_at=_at(100))))
        second = await _lister(store).list_runs(RunQuery(), limit=3, cursor=first.cursor)

        # Then that page is the next three runs: none repeated, none skipped
        assert _ids(second.records) == _ids(runs[2::-1])
        assert second.cursor is None

    async def test_a_run_created_between_pages_in_oldest_first_order_comes_last(
        self, store: RecordStore
    ) -> None:
        runs = await _seed(store, _runs(4))
        first = await _lister(store).list_runs(RunQuery(newest_first=False), limit=2)
        newer = dummy_record(foreign_id="newer", created_at=_at(100))
        await store.store(insert(newer))

        second = await _lister(store).list_runs(
            RunQuery(newest_first=False), limit=10, cursor=first.cursor
        )

        assert _ids(second.records) == [*_ids(runs[2:]), newer.run_id]

    async def test_runs_created_at_the_same_instant_are_ordered_by_run_id(
        self, store: RecordStore
    ) -> None:
        # Given five runs created in one instant (run IDs stored in no particular order)
        # and one before and one after it
        run_ids = ["c-run", "a-run", "e-run", "b-run", "d-run"]
        tied = [
            dummy_record(foreign_id=f"tied-{i}", run_id=run_id, created_at=_at(5))
            for i, run_id in enumerate(run_ids)
        ]
        before = dummy_record(foreign_id="before", run_id="z-before", created_at=_at(4))
        after = dummy_record(foreign_id="after", run_id="0-after", created_at=_at(6))
        await _seed(store, [*tied, before, after])

        # When they are listed a page of two at a time, both ways
        _, newest = await _every_page(store, RunQuery(), 2)
        _, oldest = await _every_page(store, RunQuery(newest_first=False), 2)

        # Then ties are in run ID order (descending when newest first), across pages
        middle = sorted(run_ids)
        assert newest == ["0-after", *middle[::-1], "z-before"]
        assert oldest == ["z-before", *middle, "0-after"]

    async def test_a_cursor_the_store_did_not_make_is_refused(self, store: RecordStore) -> None:
        await _seed(store, _runs(3))

        def b64(value: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

        for bad in ["", "not a cursor", "%%%", b64({"a": 1}), b64([1, 2]), b64("x"), "é"]:
            with pytest.raises(AdapterError):
                await _lister(store).list_runs(RunQuery(), limit=1, cursor=bad)

    async def test_a_cursor_of_the_other_order_is_refused(self, store: RecordStore) -> None:
        await _seed(store, _runs(3))
        newest = await _lister(store).list_runs(RunQuery(), limit=1)
        assert newest.cursor is not None

        with pytest.raises(AdapterError):
            await _lister(store).list_runs(
                RunQuery(newest_first=False), limit=1, cursor=newest.cursor
            )

    # ------------------------------------------------------------------ filters

    async def test_the_workflow_filter(self, store: RecordStore) -> None:
        mine = await _seed(store, _runs(3))
        other = await _seed(store, _runs(2, workflow_name=SECOND_WORKFLOW))

        assert await _listed(store, RunQuery(workflow_name=WORKFLOW)) == _newest_first(mine)
        assert await _listed(store, RunQuery(workflow_name=SECOND_WORKFLOW)) == _newest_first(other)
        assert await _listed(store, RunQuery()) == _newest_first([*mine, *other])
        assert await _listed(store, RunQuery(workflow_name="unknown")) == []

    async def test_the_exact_foreign_id_filter(self, store: RecordStore) -> None:
        # Given two finished runs and an active one of one foreign ID, in two workflows,
        # and a foreign ID that only starts with it
        runs = [
            dummy_record(foreign_id="order-1", created_at=_at(0), run_state=RunState.COMPLETED),
            dummy_record(foreign_id="order-1", created_at=_at(1), run_state=RunState.COMPLETED),
            dummy_record(foreign_id="order-1", created_at=_at(2)),
            dummy_record(SECOND_WORKFLOW, foreign_id="order-1", created_at=_at(3)),
            dummy_record(foreign_id="order-10", created_at=_at(4)),
        ]
        await _seed(store, runs)

        mine = await _listed(store, RunQuery(workflow_name=WORKFLOW, foreign_id="order-1"))
        anywhere = await _listed(store, RunQuery(foreign_id="order-1"))

        assert mine == _newest_first(runs[:3])
        assert anywhere == _newest_first(runs[:4])
        assert await _listed(store, RunQuery(foreign_id="order")) == []

    async def test_the_foreign_id_prefix_filter(self, store: RecordStore) -> None:
        names = ["order-1", "order-10", "order-2", "orde", "Order-3", "xorder-4", "order", "p"]
        runs = [dummy_record(foreign_id=n, created_at=_at(i)) for i, n in enumerate(names)]
        other = dummy_record(SECOND_WORKFLOW, foreign_id="order-9", created_at=_at(20))
        await _seed(store, [*runs, other])

        def want(prefix: str, records: Iterable[Record]) -> list[str]:
            return _newest_first(r for r in records if r.foreign_id.startswith(prefix))

        for prefix in ["order-1", "order", "orde", "O", "p", "ordex", "order-10"]:
            query = RunQuery(workflow_name=WORKFLOW, foreign_id_prefix=prefix)
            assert await _listed(store, query) == want(prefix, runs), prefix
        assert await _listed(store, RunQuery(foreign_id_prefix="order-")) == want(
            "order-", [*runs, other]
        )
        # the empty prefix filters nothing
        assert await _listed(store, RunQuery(foreign_id_prefix="")) == want("", [*runs, other])

    async def test_a_prefix_matches_like_wildcards_and_backslashes_as_text(
        self, store: RecordStore
    ) -> None:
        names = [
            "50%_off",
            "50%-off",
            "50-off",
            "50_off",
            "50x_off",
            "a\\b",
            "a\\\\b",
            "ab",
            "a%b",
            "_x",
            "%x",
            "zz\U0010ffff",
            "zz\U0010ffff\U0010ffffy",
            "é-1",
            "é",
            "f",
        ]
        runs = [dummy_record(foreign_id=n, created_at=_at(i)) for i, n in enumerate(names)]
        await _seed(store, runs)

        for prefix in [
            "50%",
            "50_",
            "50%_",
            "a\\",
            "a\\\\",
            "a%",
            "_",
            "%",
            "zz\U0010ffff",
            "zz\U0010ffff\U0010ffff",
            "é",
        ]:
            want = _newest_first(r for r in runs if r.foreign_id.startswith(prefix))
            assert await _listed(store, RunQuery(foreign_id_prefix=prefix)) == want, prefix
            assert want, prefix

    async def test_the_run_id_prefix_filter(self, store: RecordStore) -> None:
        # Given run IDs that share prefixes of several lengths, differ in case, or only
        # start with one another, in two workflows
        run_ids = [
            "312a28fe-6d1c-4c0e-9a51-0b7a1f0e4e01",
            "312a28fe-9b2d-41f4-8c33-6a0d2e9f7c02",
            "312a28ff-1111-4222-8333-444455556603",
            "312A28FE-aaaa-4bbb-8ccc-dddd00000004",
            "312a2",
            "412a28fe-0000-4000-8000-000000000005",
        ]
        runs = [
            dummy_record(foreign_id=f"order-{i}", run_id=run_id, created_at=_at(i))
            for i, run_id in enumerate(run_ids)
        ]
        other = dummy_record(
            SECOND_WORKFLOW,
            foreign_id="order-9",
            run_id="312a28fe-ffff-4fff-8fff-ffffffffff09",
            created_at=_at(20),
        )
        await _seed(store, [*runs, other])
        everything = [*runs, other]

        def want(prefix: str) -> list[str]:
            return _newest_first(r for r in everything if r.run_id.startswith(prefix))

        # When each prefix is listed (and counted)
        for prefix in ["312a28fe", "312a28f", "312a2", "312A", "3", "412a28fe-0", run_ids[0]]:
            query = RunQuery(run_id_prefix=prefix)
            # Then exactly the runs whose ID starts with it, newest first
            assert await _listed(store, query) == want(prefix), prefix
            assert await _lister(store).count_runs(query) == len(want(prefix)), prefix
            assert want(prefix), prefix
        # a prefix no run ID starts with, and one longer than the ID it begins with
        for prefix in ["312a28fg", "512", "312a28fe-6d1c-4c0e-9a51-0b7a1f0e4e01-x", "-", " 312"]:
            assert await _listed(store, RunQuery(run_id_prefix=prefix)) == [], prefix
            assert await _lister(store).count_runs(RunQuery(run_id_prefix=prefix)) == 0
        # the empty prefix filters nothing
        assert await _listed(store, RunQuery(run_id_prefix="")) == _newest_first(everything)

    async def test_a_run_id_prefix_resolves_a_short_run_id_with_a_page_of_two(
        self, store: RecordStore
    ) -> None:
        # Given runs whose IDs share their first characters, one of them in another
        # workflow
        runs = [
            dummy_record(foreign_id="a", run_id="312a28fe-0001", created_at=_at(0)),
            dummy_record(foreign_id="b", run_id="312a28fe-0002", created_at=_at(1)),
            dummy_record(foreign_id="c", run_id="312b0000-0003", created_at=_at(2)),
            dummy_record(
                SECOND_WORKFLOW, foreign_id="d", run_id="312c0000-0004", created_at=_at(3)
            ),
        ]
        await _seed(store, runs)
        lister = _lister(store)

        # When a prefix of one run is listed a page of two at a time: that run alone
        one = await lister.list_runs(RunQuery(run_id_prefix="312b"), limit=2)
        assert (_ids(one.records), one.cursor) == (["312b0000-0003"], None)
        assert_record_equal(one.records[0], runs[2])

        # Then a prefix of several gives two of them and a cursor (it is ambiguous)
        several = await lister.list_runs(RunQuery(run_id_prefix="312"), limit=2)
        assert _ids(several.records) == ["312c0000-0004", "312b0000-0003"]
        assert several.cursor is not None

        # and the workflow name narrows it: another workflow's run does not count
        mine = await lister.list_runs(
            RunQuery(workflow_name=SECOND_WORKFLOW, run_id_prefix="312"), limit=2
        )
        assert (_ids(mine.records), mine.cursor) == (["312c0000-0004"], None)
        none = await lister.list_runs(
            RunQuery(workflow_name=SECOND_WORKFLOW, run_id_prefix="312a"), limit=2
        )
        assert (list(none.records), none.cursor) == ([], None)
        theirs = await lister.list_runs(
            RunQuery(workflow_name=WORKFLOW, run_id_prefix="312a28fe"), limit=2
        )
        assert (_ids(theirs.records), theirs.cursor) == (["312a28fe-0002", "312a28fe-0001"], None)

    async def test_the_runs_of_a_run_id_prefix_page_with_a_cursor(self, store: RecordStore) -> None:
        # Given seven runs of one prefix, some created in one instant, among others
        prefixed = [
            dummy_record(foreign_id=f"p-{i}", run_id=f"abc-{i}", created_at=_at(min(i, 4)))
            for i in range(7)
        ]
        others = [
            dummy_record(foreign_id=f"o-{i}", run_id=f"abd-{i}", created_at=_at(i))
            for i in range(4)
        ]
        await _seed(store, [*others[:2], *prefixed[::-1], *others[2:]])

        # When they are listed a page of two at a time, both ways
        query = RunQuery(run_id_prefix="abc-")
        pages, newest = await _every_page(store, query, 2)
        _, oldest = await _every_page(store, dataclasses.replace(query, newest_first=False), 2)

        # Then every run of the prefix comes once, in (created_at, run ID) order
        want = sorted(prefixed, key=lambda r: (r.created_at, r.run_id))
        assert [len(p.records) for p in pages] == [2, 2, 2, 1]
        assert newest == _ids(want[::-1])
        assert oldest == _ids(want)

    async def test_a_run_id_prefix_matches_like_wildcards_and_backslashes_as_text(
        self, store: RecordStore
    ) -> None:
        run_ids = [
            "50%_off",
            "50%-off",
            "50-off",
            "50_off",
            "50x_off",
            "a\\b",
            "a\\\\b",
            "ab",
            "a%b",
            "_x",
            "%x",
            "zz\U0010ffff",
            "zz\U0010ffff\U0010ffffy",
            "é-1",
            "é",
            "f",
        ]
        runs = [
            dummy_record(foreign_id=f"order-{i}", run_id=run_id, created_at=_at(i))
            for i, run_id in enumerate(run_ids)
        ]
        await _seed(store, runs)

        for prefix in [
            "50%",
            "50_",
            "50%_",
            "a\\",
            "a\\\\",
            "a%",
            "_",
            "%",
            "zz\U0010ffff",
            "zz\U0010ffff\U0010ffff",
            "é",
        ]:
            want = _newest_first(r for r in runs if r.run_id.startswith(prefix))
            assert await _listed(store, RunQuery(run_id_prefix=prefix)) == want, prefix
            assert want, prefix

    async def test_a_run_id_prefix_no_store_can_hold_matches_no_run(
        self, store: RecordStore
    ) -> None:
        # Given a run (a NUL or a lone surrogate cannot be stored in every backend, so no
        # run ID holds one)
        await _seed(store, [dummy_record(foreign_id="a", run_id="abc-1", created_at=_at(0))])
        lister = _lister(store)

        for prefix in ["\x00", "abc\x00", "\ud800", "abc\udfff"]:
            # When such a prefix is listed and counted
            page = await lister.list_runs(RunQuery(run_id_prefix=prefix), limit=2)
            count = await lister.count_runs(RunQuery(workflow_name=WORKFLOW, run_id_prefix=prefix))

            # Then no run matches (and nothing is raised)
            assert (list(page.records), page.cursor, count) == ([], None, 0), repr(prefix)

    async def test_the_status_filter(self, store: RecordStore) -> None:
        runs = [
            dummy_record(foreign_id=f"order-{i}", status=status, created_at=_at(i))
            for i, status in enumerate(
                [Status.STARTED, Status.MIDDLE, Status.END, Status.MIDDLE, 7, Status.STARTED]
            )
        ]
        await _seed(store, runs)

        for statuses in [(Status.MIDDLE,), (Status.STARTED, Status.END), (7,), (99,)]:
            want = _newest_first(r for r in runs if r.status in statuses)
            got = await _listed(store, RunQuery(workflow_name=WORKFLOW, statuses=statuses))
            assert got == want, statuses
            assert await _listed(store, RunQuery(statuses=statuses)) == want, statuses

    async def test_the_run_state_filter(self, store: RecordStore) -> None:
        states = [
            RunState.INITIATED,
            RunState.RUNNING,
            RunState.PAUSED,
            RunState.COMPLETED,
            RunState.CANCELLED,
            RunState.RUNNING,
            RunState.DATA_DELETED,
        ]
        runs = [
            dummy_record(foreign_id=f"order-{i}", run_state=state, created_at=_at(i))
            for i, state in enumerate(states)
        ]
        await _seed(store, runs)

        for wanted in [
            (RunState.RUNNING,),
            (RunState.PAUSED, RunState.CANCELLED),
            (RunState.DATA_DELETED, RunState.COMPLETED, RunState.INITIATED),
            (RunState.REQUESTED_DATA_DELETED,),
        ]:
            want = _newest_first(r for r in runs if r.run_state in wanted)
            got = await _listed(store, RunQuery(workflow_name=WORKFLOW, run_states=wanted))
            assert got == want, wanted
            assert await _listed(store, RunQuery(run_states=wanted)) == want, wanted

    async def test_created_after_is_inclusive_and_created_before_exclusive(
        self, store: RecordStore
    ) -> None:
        runs = await _seed(store, _runs(6))

        def query(after: int | None, before: int | None, newest_first: bool = True) -> RunQuery:
            return RunQuery(
                created_after=None if after is None else _at(after),
                created_before=None if before is None else _at(before),
                newest_first=newest_first,
            )

        assert await _listed(store, query(2, 4)) == _ids(runs[3:1:-1])
        assert await _listed(store, query(2, None)) == _ids(runs[:1:-1])
        assert await _listed(store, query(None, 2)) == _ids(runs[1::-1])
        assert await _listed(store, query(3, 3)) == []
        assert await _listed(store, query(2, 4, False)) == _ids(runs[2:4])
        # a microsecond either side of a run's creation time
        micro = timedelta(microseconds=1)
        assert await _listed(store, RunQuery(created_after=_at(2) + micro)) == _ids(runs[:2:-1])
        assert await _listed(store, RunQuery(created_before=_at(2) + micro)) == _ids(runs[2::-1])

    async def test_filters_combine(self, store: RecordStore) -> None:
        # Given runs that differ in workflow, foreign ID, status, run state and time
        runs: list[Record] = []
        i = 0
        for workflow in (WORKFLOW, SECOND_WORKFLOW):
            for fid in ("order-1", "order-2", "refund-1"):
                for status in (Status.STARTED, Status.END):
                    for state in (RunState.COMPLETED, RunState.CANCELLED):
                        runs.append(
                            dummy_record(
                                workflow,
                                foreign_id=fid,
                                status=status,
                                run_id=f"run-{i:02d}",
                                run_state=state,
                                created_at=_at(i),
                            )
                        )
                        i += 1
        await _seed(store, runs)

        queries = [
            RunQuery(workflow_name=WORKFLOW, foreign_id_prefix="order", statuses=(Status.END,)),
            RunQuery(foreign_id="order-2", run_states=(RunState.CANCELLED,)),
            RunQuery(
                workflow_name=SECOND_WORKFLOW,
                foreign_id="order-1",
                foreign_id_prefix="order",
                statuses=(Status.STARTED,),
                run_states=(RunState.COMPLETED,),
                created_after=_at(12),
                created_before=_at(24),
            ),
            RunQuery(foreign_id="order-1", foreign_id_prefix="refund"),
            RunQuery(workflow_name=WORKFLOW, run_id_prefix="run-0", statuses=(Status.END,)),
            RunQuery(
                run_id_prefix="run-1",
                foreign_id_prefix="order",
                run_states=(RunState.CANCELLED,),
                created_before=_at(20),
                newest_first=False,
            ),
            RunQuery(foreign_id="refund-1", run_id_prefix="run-2"),
            RunQuery(
                foreign_id_prefix="re",
                statuses=(Status.STARTED, Status.END),
                run_states=(RunState.COMPLETED,),
                created_after=_at(3),
                newest_first=False,
            ),
        ]
        for query in queries:
            want = [r for r in runs if _matches(query, r)]
            want.sort(key=lambda r: (r.created_at, r.run_id), reverse=query.newest_first)
            _, paged = await _every_page(store, query, 2)
            assert paged == _ids(want), query
            assert await _lister(store).count_runs(query) == len(want), query

    async def test_a_run_that_moves_leaves_and_enters_a_status_filter(
        self, store: RecordStore
    ) -> None:
        runs = await _seed(store, _runs(3))
        query = RunQuery(statuses=(Status.STARTED,))
        assert await _listed(store, query) == _ids(runs[::-1])

        await store.store(update(runs[1], status=Status.END))

        assert await _listed(store, query) == _ids([runs[2], runs[0]])
        assert await _listed(store, RunQuery(statuses=(Status.END,))) == [runs[1].run_id]

    # ------------------------------------------------------------------ count

    async def test_count_counts_the_matching_runs(self, store: RecordStore) -> None:
        await _seed(store, _runs(5))
        await _seed(store, _runs(2, workflow_name=SECOND_WORKFLOW))
        lister = _lister(store)

        assert await lister.count_runs(RunQuery()) == 7
        assert await lister.count_runs(RunQuery(workflow_name=SECOND_WORKFLOW)) == 2
        assert await lister.count_runs(RunQuery(foreign_id_prefix="order-1")) == 2
        assert await lister.count_runs(RunQuery(statuses=(Status.END,))) == 0

    async def test_count_stops_at_the_cap(self, store: RecordStore) -> None:
        await _seed(store, _runs(5))
        lister = _lister(store)

        assert await lister.count_runs(RunQuery(), cap=3) == 3
        assert await lister.count_runs(RunQuery(), cap=5) == 5
        assert await lister.count_runs(RunQuery(), cap=6) == 5
        assert await lister.count_runs(RunQuery(workflow_name=WORKFLOW), cap=1) == 1


def _matches(query: RunQuery, record: Record) -> bool:
    """What the suite expects of each filter (written out, not taken from an adapter)."""
    return (
        (not query.workflow_name or record.workflow_name == query.workflow_name)
        and (query.foreign_id is None or record.foreign_id == query.foreign_id)
        and (
            query.foreign_id_prefix is None or record.foreign_id.startswith(query.foreign_id_prefix)
        )
        and (query.run_id_prefix is None or record.run_id.startswith(query.run_id_prefix))
        and (not query.statuses or record.status in query.statuses)
        and (not query.run_states or record.run_state in query.run_states)
        and (query.created_after is None or record.created_at >= query.created_after)
        and (query.created_before is None or record.created_at < query.created_before)
    )
