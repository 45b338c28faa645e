"""Conformance suites for adapters: subclass one, override its factory fixture, run pytest.

Each suite is a plain pytest class of asyncio test cases (install the ``adaptertest``
extra: pytest and pytest-asyncio). An adapter's test module subclasses it as
``Test<Adapter>`` and overrides only the factory fixture (``store``, ``streamer``,
``make_schedulers``, ``timeout_store`` or ``make_connector``)::

    from conveyor.adaptertest import RecordStoreSuite

    class TestMyRecordStore(RecordStoreSuite):
        @pytest.fixture
        async def store(self) -> AsyncIterator[RecordStore]:
            yield MyRecordStore(...)

An adapter that claims a capability (``conveyor.abc.ReportsPending`` and the others) runs
its suite too, with the fixture of the contract it extends: ``ReportsPendingSuite`` and
``TailsTopicsSuite`` (``streamer``), ``ConnectorReportsPendingSuite``
(``make_connector``), ``KeepsSnapshotsSuite``, ``NotifiesChangesSuite``,
``ReportsOutboxSuite``, ``RecordsFailuresSuite``, ``KeepsHistorySuite``,
``ListsRunsSuite``, ``KeepsDefinitionsSuite`` and ``PinsEventLocationSuite`` (``store``),
and ``PublishesEventsSuite``, whose ``store_and_streamer`` fixture yields a
``StoreAndStreamer``: the store and the streamer it publishes to.

The helpers the suites use to build writes are public too, for an adapter's own tests:
``dummy_record`` (a record of the suites' dummy workflow), ``insert`` and ``update`` (the
``RecordWrite`` that creates or replaces it, with its outbox event), ``failure`` (a failed
attempt on a record's version) and ``new_name`` (a unique topic, receiver or role name).

The cases carry ``pytest.mark.asyncio``, so they run under pytest-asyncio's strict mode
as well as ``asyncio_mode = "auto"``; in strict mode the overriding fixture must be
declared with ``@pytest_asyncio.fixture``. The suites' modules are registered for
pytest's assertion rewriting, so a failing case explains itself.
"""

import pytest

pytest.register_assert_rewrite(
    "conveyor.adaptertest._pending",
    "conveyor.adaptertest._publishing",
    "conveyor.adaptertest._store_capabilities",
    "conveyor.adaptertest._tails",
    "conveyor.adaptertest._connector",
    "conveyor.adaptertest._connector_pending",
    "conveyor.adaptertest._definitions",
    "conveyor.adaptertest._event_location",
    "conveyor.adaptertest._event_streamer",
    "conveyor.adaptertest._failures",
    "conveyor.adaptertest._fixtures",
    "conveyor.adaptertest._history",
    "conveyor.adaptertest._listing",
    "conveyor.adaptertest._record_store",
    "conveyor.adaptertest._role_scheduler",
    "conveyor.adaptertest._timeout_store",
)

from ._connector import ConnectorMaker as ConnectorMaker  # noqa: E402
from ._connector import ConnectorSuite as ConnectorSuite  # noqa: E402
from ._connector_pending import (  # noqa: E402
    ConnectorReportsPendingSuite as ConnectorReportsPendingSuite,
)
from ._definitions import KeepsDefinitionsSuite as KeepsDefinitionsSuite  # noqa: E402
from ._event_location import PinsEventLocationSuite as PinsEventLocationSuite  # noqa: E402
from ._event_streamer import EventStreamerSuite as EventStreamerSuite  # noqa: E402
from ._failures import RecordsFailuresSuite as RecordsFailuresSuite  # noqa: E402
from ._failures import failure as failure  # noqa: E402
from ._fixtures import dummy_record as dummy_record  # noqa: E402
from ._fixtures import insert as insert  # noqa: E402
from ._fixtures import new_name as new_name  # noqa: E402
from ._fixtures import update as update  # noqa: E402
from ._history import KeepsHistorySuite as KeepsHistorySuite  # noqa: E402
from ._listing import ListsRunsSuite as ListsRunsSuite  # noqa: E402
from ._pending import ReportsPendingSuite as ReportsPendingSuite  # noqa: E402
from ._publishing import PublishesEventsSuite as PublishesEventsSuite  # noqa: E402
from ._publishing import StoreAndStreamer as StoreAndStreamer  # noqa: E402
from ._record_store import RecordStoreSuite as RecordStoreSuite  # noqa: E402
from ._role_scheduler import RoleSchedulerSuite as RoleSchedulerSuite  # noqa: E402
from ._role_scheduler import SchedulerFactory as SchedulerFactory  # noqa: E402
from ._store_capabilities import KeepsSnapshotsSuite as KeepsSnapshotsSuite  # noqa: E402
from ._store_capabilities import NotifiesChangesSuite as NotifiesChangesSuite  # noqa: E402
from ._store_capabilities import ReportsOutboxSuite as ReportsOutboxSuite  # noqa: E402
from ._tails import TailsTopicsSuite as TailsTopicsSuite  # noqa: E402
from ._timeout_store import TimeoutStoreSuite as TimeoutStoreSuite  # noqa: E402

__all__ = (
    "ConnectorMaker",
    "ConnectorReportsPendingSuite",
    "ConnectorSuite",
    "EventStreamerSuite",
    "KeepsDefinitionsSuite",
    "KeepsHistorySuite",
    "KeepsSnapshotsSuite",
    "ListsRunsSuite",
    "NotifiesChangesSuite",
    "PinsEventLocationSuite",
    "PublishesEventsSuite",
    "RecordStoreSuite",
    "RecordsFailuresSuite",
    "ReportsOutboxSuite",
    "ReportsPendingSuite",
    "RoleSchedulerSuite",
    "SchedulerFactory",
    "StoreAndStreamer",
    "TailsTopicsSuite",
    "TimeoutStoreSuite",
    "dummy_record",
    "failure",
    "insert",
    "new_name",
    "update",
)
