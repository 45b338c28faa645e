"""The memory adapters pass the conformance suites (they are the reference)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from conveyor import ConnectorEvent
from conveyor.abc import ConnectorConstructor, RoleScheduler
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from conveyor.adaptertest import (
    ConnectorMaker,
    ConnectorReportsPendingSuite,
    ConnectorSuite,
    EventStreamerSuite,
    KeepsDefinitionsSuite,
    KeepsHistorySuite,
    KeepsSnapshotsSuite,
    ListsRunsSuite,
    NotifiesChangesSuite,
    PinsEventLocationSuite,
    RecordsFailuresSuite,
    RecordStoreSuite,
    ReportsOutboxSuite,
    ReportsPendingSuite,
    RoleSchedulerSuite,
    SchedulerFactory,
    TailsTopicsSuite,
    TimeoutStoreSuite,
)


class TestMemoryRecordStore(RecordStoreSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self) -> MemoryEventStreamer:
        return MemoryEventStreamer()


class TestMemoryRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    async def make_schedulers(self) -> SchedulerFactory:
        scheduler = MemoryRoleScheduler()  # one per process: every "instance" shares it

        async def make(n: int) -> Sequence[RoleScheduler]:
            return [scheduler] * n

        return make


class TestMemoryTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    async def timeout_store(self) -> MemoryTimeoutStore:
        return MemoryTimeoutStore()


class _MemoryConnectorMaker:
    """The seeded-connector fixture both connector suites run with."""

    @pytest.fixture
    async def make_connector(self) -> ConnectorMaker:
        async def make(events: Sequence[ConnectorEvent]) -> ConnectorConstructor:
            return MemoryConnector(events)

        return make


class TestMemoryConnector(_MemoryConnectorMaker, ConnectorSuite):
    pass


class TestMemoryConnectorReportsPending(_MemoryConnectorMaker, ConnectorReportsPendingSuite):
    pass


# --------------------------------------------------------------------------- capabilities


class TestMemoryReceiversReportPending(ReportsPendingSuite):
    @pytest.fixture
    async def streamer(self) -> MemoryEventStreamer:
        return MemoryEventStreamer()


class TestMemoryTails(TailsTopicsSuite):
    @pytest.fixture
    async def streamer(self) -> MemoryEventStreamer:
        return MemoryEventStreamer()


class TestMemoryRecordStoreKeepsSnapshots(KeepsSnapshotsSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryRecordStoreNotifiesChanges(NotifiesChangesSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryRecordStoreReportsOutbox(ReportsOutboxSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryRecordStoreRecordsFailures(RecordsFailuresSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryRecordStoreKeepsHistory(KeepsHistorySuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryRecordStoreKeepsDefinitions(KeepsDefinitionsSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryRecordStorePinsEventLocation(PinsEventLocationSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()


class TestMemoryRecordStoreListsRuns(ListsRunsSuite):
    @pytest.fixture
    async def store(self) -> MemoryRecordStore:
        return MemoryRecordStore()
