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

The cases carry ``pytest.mark.asyncio``, so they run under pytest-asyncio's strict mode
as well as ``asyncio_mode = "auto"``; in strict mode the overriding fixture must be
declared with ``@pytest_asyncio.fixture``. The suites' modules are registered for
pytest's assertion rewriting, so a failing case explains itself.
"""

import pytest

pytest.register_assert_rewrite(
    "conveyor.adaptertest._connector",
    "conveyor.adaptertest._event_streamer",
    "conveyor.adaptertest._fixtures",
    "conveyor.adaptertest._record_store",
    "conveyor.adaptertest._role_scheduler",
    "conveyor.adaptertest._timeout_store",
)

from ._connector import ConnectorMaker as ConnectorMaker  # noqa: E402
from ._connector import ConnectorSuite as ConnectorSuite  # noqa: E402
from ._event_streamer import EventStreamerSuite as EventStreamerSuite  # noqa: E402
from ._record_store import RecordStoreSuite as RecordStoreSuite  # noqa: E402
from ._role_scheduler import RoleSchedulerSuite as RoleSchedulerSuite  # noqa: E402
from ._role_scheduler import SchedulerFactory as SchedulerFactory  # noqa: E402
from ._timeout_store import TimeoutStoreSuite as TimeoutStoreSuite  # noqa: E402

__all__ = (
    "ConnectorMaker",
    "ConnectorSuite",
    "EventStreamerSuite",
    "RecordStoreSuite",
    "RoleSchedulerSuite",
    "SchedulerFactory",
    "TimeoutStoreSuite",
)
