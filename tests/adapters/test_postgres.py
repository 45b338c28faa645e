"""The PostgreSQL adapters pass the conformance suites against a real server.

Each case gets fresh adapters on this run's throw-away database (see ``_pg_support``):
record and timeout stores on emptied tables, streamers and role schedulers on a shared
schema (the suites use unique topic, receiver and role names).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from _pg_support import FAST_ROLES, open_database, pg_url

from conveyor.abc import RoleScheduler
from conveyor.adapters.postgres import (
    PostgresEventStreamer,
    PostgresRecordStore,
    PostgresRecordStoreWithoutHistory,
    PostgresRoleScheduler,
    PostgresTimeoutStore,
)
from conveyor.adaptertest import (
    EventStreamerSuite,
    KeepsDefinitionsSuite,
    KeepsHistorySuite,
    ListsRunsSuite,
    PinsEventLocationSuite,
    PublishesEventsSuite,
    RecordsFailuresSuite,
    RecordStoreSuite,
    ReportsPendingSuite,
    RoleSchedulerSuite,
    SchedulerFactory,
    StoreAndStreamer,
    TailsTopicsSuite,
    TimeoutStoreSuite,
)

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres


class OnPostgresRecordStore:
    """The ``store`` fixture of the record-store suites: a fresh ``PostgresRecordStore``."""

    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[PostgresRecordStore]:
        async with open_database(pg_url, "suite_records", fresh=True) as db:
            store = PostgresRecordStore(db)
            yield store
            await store.close()


class TestPostgresRecordStore(OnPostgresRecordStore, RecordStoreSuite):
    pass


class TestPostgresRecordStoreRecordsFailures(OnPostgresRecordStore, RecordsFailuresSuite):
    pass


class TestPostgresRecordStoreKeepsHistory(OnPostgresRecordStore, KeepsHistorySuite):
    pass


class TestPostgresRecordStoreKeepsDefinitions(OnPostgresRecordStore, KeepsDefinitionsSuite):
    pass


class TestPostgresRecordStorePinsEventLocation(OnPostgresRecordStore, PinsEventLocationSuite):
    pass


class TestPostgresRecordStoreListsRuns(OnPostgresRecordStore, ListsRunsSuite):
    pass


class TestPostgresPublishingStoreKeepsHistory(KeepsHistorySuite):
    """The store ``conveyor.connect`` builds (its writes append their events to the log):
    the same history, from the direct-event statements."""

    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[PostgresRecordStore]:
        async with open_database(pg_url, "suite_published", fresh=True) as db:
            streamer = PostgresEventStreamer(db)
            store = PostgresRecordStore(db, events=streamer)
            yield store
            await store.close()
            await streamer.close()


class TestPostgresRecordStoreWithoutHistory(RecordStoreSuite):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[PostgresRecordStoreWithoutHistory]:
        async with open_database(pg_url, "suite_records", fresh=True) as db:
            store = PostgresRecordStoreWithoutHistory(db)
            yield store
            await store.close()


class TestPostgresRecordStoreWithoutHistoryRecordsFailures(RecordsFailuresSuite):
    @pytest.fixture
    async def store(self, pg_url: str) -> AsyncIterator[PostgresRecordStoreWithoutHistory]:
        async with open_database(pg_url, "suite_published", fresh=True) as db:
            streamer = PostgresEventStreamer(db)
            store = PostgresRecordStoreWithoutHistory(db, events=streamer)
            yield store
            await store.close()
            await streamer.close()


class TestPostgresTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    async def timeout_store(self, pg_url: str) -> AsyncIterator[PostgresTimeoutStore]:
        async with open_database(pg_url, "suite_timeouts", fresh=True) as db:
            yield PostgresTimeoutStore(db)


class TestPostgresEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self, pg_url: str) -> AsyncIterator[PostgresEventStreamer]:
        async with open_database(pg_url, "suite_events") as db:
            streamer = PostgresEventStreamer(db)
            yield streamer
            await streamer.close()


class TestPostgresRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def make_schedulers(self, pg_url: str) -> AsyncIterator[SchedulerFactory]:
        async with AsyncExitStack() as stack:
            made: list[PostgresRoleScheduler] = []

            async def make(n: int) -> Sequence[RoleScheduler]:
                # One database (pool and listener) per scheduler, as in separate processes.
                for _ in range(n):
                    db = await stack.enter_async_context(
                        open_database(pg_url, "suite_roles", **FAST_ROLES)
                    )
                    scheduler = PostgresRoleScheduler(db)
                    stack.push_async_callback(scheduler.close)
                    made.append(scheduler)
                return made[-n:]

            yield make


@asynccontextmanager
async def _listening_streamer(url: str) -> AsyncIterator[PostgresEventStreamer]:
    """A streamer on a database whose LISTEN connection is up."""
    async with open_database(url, "suite_events") as db:
        assert await db.wait_listening(10.0), "the LISTEN connection did not come up"
        streamer = PostgresEventStreamer(db)
        yield streamer
        await streamer.close()


class TestPostgresReceiversReportPending(ReportsPendingSuite):
    """Receivers tell they are caught up only while notifications can be relied on: the
    fixture waits for the database's listener, as a running workflow has it.
    """

    @pytest.fixture
    async def streamer(self, pg_url: str) -> AsyncIterator[PostgresEventStreamer]:
        async with _listening_streamer(pg_url) as streamer:
            yield streamer


class TestPostgresTails(TailsTopicsSuite):
    """Tails report a gap after the listener (re)connected: the fixture waits for it to be
    up, as a running workflow has it, so that no case sees one."""

    @pytest.fixture
    async def streamer(self, pg_url: str) -> AsyncIterator[PostgresEventStreamer]:
        async with _listening_streamer(pg_url) as streamer:
            yield streamer


class TestPostgresRecordStorePublishesEvents(PublishesEventsSuite):
    """The store ``conveyor.connect`` builds: it appends its events to the streamer's log."""

    @pytest.fixture
    async def store_and_streamer(self, pg_url: str) -> AsyncIterator[StoreAndStreamer]:
        async with open_database(pg_url, "suite_published", fresh=True) as db:
            streamer = PostgresEventStreamer(db)
            store = PostgresRecordStore(db, events=streamer)
            yield StoreAndStreamer(store, streamer)
            await store.close()
            await streamer.close()
