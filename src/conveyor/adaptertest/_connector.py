"""The connector conformance suite (luno-behaviour.md §2.5, plus the consumer's contract)."""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import ClassVar

import pytest
import pytest_asyncio

from .._builder import Builder
from .._connector import ConnectorConstructor, ConnectorConsumer, ConnectorEvent
from .._errors import WorkflowInProgress
from .._record import Run
from .._workflow import Workflow
from ..adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from ..testing import require
from ._fixtures import WAIT_TIMEOUT, User, new_name, within
from ._partitions import assert_in_log_order, redelivered

__all__ = ["ConnectorCases", "ConnectorMaker", "ConnectorSuite", "Consumers"]

ConnectorMaker = Callable[[Sequence[ConnectorEvent]], Awaitable[ConnectorConstructor]]
"""``await make(events)`` gives a constructor whose consumers read exactly ``events``, in order."""

CONNECTOR_EMAIL = "connector@workflow.com"


class ConnectorStatus(enum.IntEnum):
    """The statuses of the whole-workflow cases (luno's connector test)."""

    UNKNOWN = 0
    STARTED = 1
    EMAIL_SET = 2


def _events(count: int) -> list[ConnectorEvent]:
    """``count`` distinct events with the IDs "1", "2", ..."""
    return [ConnectorEvent(id=str(i), foreign_id=f"fid-{i}") for i in range(1, count + 1)]


def _ids(events: Sequence[ConnectorEvent]) -> list[str]:
    return [e.id for e in events]


def _id(event: ConnectorEvent) -> str:
    return event.id


async def _yield_to_others(times: int = 10) -> None:
    """Let other tasks run up to their next real wait (no time passes)."""
    for _ in range(times):
        await asyncio.sleep(0)


class Consumers:
    """Makes consumers for one case and closes them all when it ends."""

    def __init__(self) -> None:
        self._opened: list[ConnectorConsumer] = []

    async def make(self, constructor: ConnectorConstructor, name: str) -> ConnectorConsumer:
        consumer = await constructor.make(name)
        self._opened.append(consumer)
        return consumer

    async def aclose(self) -> None:
        """Close everything made (again, if a case closed it already: ``close`` is idempotent)."""
        errors: list[Exception] = []
        while self._opened:
            try:
                await self._opened.pop().close()
            except Exception as exc:  # close the rest, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]


class ConnectorCases:
    """What the connector suites share: the ``make_connector`` fixture to override, the
    consumers of a case (all closed when it ends) and the receiving helpers."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    wait_timeout: ClassVar[float] = WAIT_TIMEOUT
    """Seconds a case waits for an expected event before failing."""

    @pytest_asyncio.fixture
    async def make_connector(self) -> AsyncIterator[ConnectorMaker]:
        """An async maker of seeded connectors for one case: override this fixture."""
        raise NotImplementedError("override the `make_connector` fixture to yield a maker")
        yield  # pragma: no cover

    @pytest_asyncio.fixture
    async def consumers(self) -> AsyncIterator[Consumers]:
        """Consumers of one case, all closed (again) when it ends."""
        consumers = Consumers()
        try:
            yield consumers
        finally:
            await consumers.aclose()

    async def _recv(
        self, consumer: ConnectorConsumer, max_events: int = 1
    ) -> Sequence[ConnectorEvent]:
        events = await within(consumer.recv(max_events), self.wait_timeout, "an event")
        assert 1 <= len(events) <= max_events, f"recv({max_events}) returned {len(events)}"
        return events

    async def _collect(self, consumer: ConnectorConsumer, count: int) -> list[ConnectorEvent]:
        """Receive exactly ``count`` events (in as many ``recv`` calls as it takes)."""
        events: list[ConnectorEvent] = []

        async def collect() -> None:
            while len(events) < count:
                batch = await consumer.recv(count - len(events))
                assert 1 <= len(batch) <= count - len(events), f"recv returned {len(batch)}"
                events.extend(batch)

        await within(collect(), self.wait_timeout, f"{count} events (got {len(events)})")
        return events


class ConnectorSuite(ConnectorCases):
    """Conformance cases every connector (``ConnectorConstructor`` and its consumers) must pass.

    Subclass it in a test module as ``Test<YourConnector>`` and override the
    ``make_connector`` fixture to yield an **async** maker: ``await make(events)`` returns a
    constructor whose consumers read a fresh stream holding exactly ``events`` (IDs,
    foreign IDs, types and headers as given), in that order, with no cursor committed
    yet. It is a coroutine so that seeding a real backend can do I/O::

        class TestMyConnector(ConnectorSuite):
            @pytest.fixture
            async def make_connector(self) -> AsyncIterator[ConnectorMaker]:
                made: list[MyConnector] = []

                async def make(events: Sequence[ConnectorEvent]) -> ConnectorConstructor:
                    connector = await MyConnector.seeded(new_topic(), events)
                    made.append(connector)
                    return connector

                yield make
                for connector in made:
                    await connector.close()

    The whole-workflow cases run on the memory streamer, record store and role scheduler;
    only the connector is under test. With pytest-asyncio's ``asyncio_mode = "auto"`` the
    override works as written; in strict mode decorate it with ``@pytest_asyncio.fixture``.
    ``wait_timeout`` bounds every wait for an event; ``workflow_timeout`` bounds each
    whole-workflow case.
    """

    workflow_timeout: ClassVar[float] = 2 * WAIT_TIMEOUT
    """Seconds a whole-workflow case may take (start, every run, stop)."""

    # ------------------------------------------------------------ whole workflow (§2.5)

    def _build(
        self,
        constructor: ConnectorConstructor,
        calls: Counter[str],
        *,
        parallel_count: int = 1,
    ) -> Workflow[User, ConnectorStatus]:
        """luno's "connector-test": a run per event, then Started → EmailSet."""

        async def start_run(wf: Workflow[User, ConnectorStatus], event: ConnectorEvent) -> None:
            calls[event.id] += 1
            try:
                await wf.trigger(event.foreign_id, initial=User(uid=event.foreign_id))
            except WorkflowInProgress:
                pass  # a redelivery while the run is active: the run exists

        async def set_email(run: Run[User, ConnectorStatus]) -> ConnectorStatus:
            run.object.email = CONNECTOR_EMAIL
            return ConnectorStatus.EMAIL_SET

        # A unique name: cursors named after the workflow do not mix between cases.
        b = Builder(new_name("connector-test"), User, ConnectorStatus)
        b.add_step(ConnectorStatus.STARTED, set_email, ConnectorStatus.EMAIL_SET)
        b.add_connector("tester", constructor, start_run).with_options(
            parallel_count=parallel_count, err_backoff=0.01
        )
        return b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())

    async def _require_email_set(
        self, wf: Workflow[User, ConnectorStatus], events: Sequence[ConnectorEvent]
    ) -> None:
        async def scenario() -> None:
            async with wf:
                for e in events:
                    await require(
                        wf,
                        e.foreign_id,
                        ConnectorStatus.EMAIL_SET,
                        User(uid=e.foreign_id, email=CONNECTOR_EMAIL),
                        timeout=self.workflow_timeout,
                    )

        await within(scenario(), self.workflow_timeout, "a run per event to reach EMAIL_SET")

    async def test_connector_triggers_a_run_per_event(self, make_connector: ConnectorMaker) -> None:
        seed = [
            ConnectorEvent(id="1", foreign_id="SKDJF-2304893-SDFKJBSD"),
            ConnectorEvent(id="2", foreign_id="LSKDF-23OU5QL-23K45B23"),
        ]
        calls: Counter[str] = Counter()
        wf = self._build(await make_connector(seed), calls)

        await self._require_email_set(wf, seed)

        assert set(calls) == {"1", "2"}

    async def test_parallel_connector_triggers_exactly_one_run_per_event(
        self, make_connector: ConnectorMaker
    ) -> None:
        seed = [ConnectorEvent(id=f"event-{i}", foreign_id=f"user-{i}") for i in range(30)]
        calls: Counter[str] = Counter()
        wf = self._build(await make_connector(seed), calls, parallel_count=3)

        await self._require_email_set(wf, seed)  # stops the workflow before returning

        assert calls == Counter({e.id: 1 for e in seed}), "each event handled exactly once"
        for e in seed:
            runs = await wf.list_runs(e.foreign_id)
            assert len(runs) == 1, f"{len(runs)} runs for {e.foreign_id}"

    # ------------------------------------------------------------ the consumer's contract

    async def test_events_round_trip_id_foreign_id_type_and_headers(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        seed = [
            ConnectorEvent(
                id="evt-1",
                foreign_id="Ünïcode fid / with spaces",
                type="user.created",
                headers={"x-custom": "any value ☃ =;,", "empty": ""},
            ),
            ConnectorEvent(id="evt-2", foreign_id="Andrew Wormald"),
        ]
        consumer = await consumers.make(await make_connector(seed), new_name("reader"))

        events = await self._collect(consumer, 2)

        assert_in_log_order(consumer, events, _id, _ids(seed))
        assert sorted((e.id, e.foreign_id, e.type, dict(e.headers)) for e in events) == sorted(
            (s.id, s.foreign_id, s.type, dict(s.headers)) for s in seed
        )
        for event in events:
            created_at = event.created_at
            assert created_at is None or created_at.tzinfo is not None, (
                "created_at must be timezone-aware (or None: the workflow's clock is used)"
            )

    async def test_recv_returns_at_most_max_events_in_order(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        consumer = await consumers.make(await make_connector(_events(5)), new_name("reader"))

        received: list[ConnectorEvent] = []
        while len(received) < 5:
            received.extend(await self._recv(consumer, max_events=2))  # asserts 1 <= len <= 2

        assert_in_log_order(consumer, received, _id, ["1", "2", "3", "4", "5"])

    async def test_recv_at_the_end_of_the_stream_waits_and_is_cancellable(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        consumer = await consumers.make(await make_connector(_events(1)), new_name("reader"))
        assert _ids(await self._recv(consumer, max_events=10)) == ["1"]

        pending = asyncio.create_task(consumer.recv())
        try:
            await _yield_to_others()
            assert not pending.done(), "recv returned with no event to hand out"

            pending.cancel()
            done, _ = await asyncio.wait({pending}, timeout=self.wait_timeout)
        finally:
            pending.cancel()

        assert pending in done, "recv did not stop when cancelled"
        assert pending.cancelled()

    async def test_acked_events_are_not_redelivered_to_a_new_consumer_of_the_same_name(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        constructor = await make_connector(_events(4))
        name = new_name("reader")
        first = await consumers.make(constructor, name)
        handed = await self._collect(first, 2)
        for event in handed:
            await first.ack(event)
        await first.close()

        reopened = await consumers.make(constructor, name)

        # the two handed out first were "1" and "2" (on a partitioned log: the first of
        # their partitions, whichever they are); every other event comes, in order
        rest = [i for i in _ids(_events(4)) if i not in _ids(handed)]
        assert_in_log_order(reopened, await self._collect(reopened, 2), _id, rest)

    async def test_a_consumer_of_another_name_sees_every_event(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        constructor = await make_connector(_events(3))
        first = await consumers.make(constructor, new_name("first"))
        for event in await self._collect(first, 3):
            await first.ack(event)
        await first.close()

        other = await consumers.make(constructor, new_name("second"))

        assert_in_log_order(other, await self._collect(other, 3), _id, ["1", "2", "3"])

    async def test_unacked_events_are_redelivered_to_a_new_consumer_of_the_same_name(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        constructor = await make_connector(_events(3))
        name = new_name("reader")
        first = await consumers.make(constructor, name)
        handed = await self._collect(first, 2)
        assert_in_log_order(first, handed, _id, [i for i in ("1", "2", "3") if i in _ids(handed)])
        await first.close()  # nothing acknowledged

        reopened = await consumers.make(constructor, name)

        assert_in_log_order(reopened, await self._collect(reopened, 3), _id, ["1", "2", "3"])

    async def test_cursor_advances_only_over_an_unbroken_run_of_acks(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        constructor = await make_connector(_events(5))
        name = new_name("reader")
        first = await consumers.make(constructor, name)
        handed = await self._collect(first, 5)
        events = {e.id: e for e in handed}
        acked = ("4", "1", "2")  # out of order, and never "3"
        again = redelivered(first, handed, _id, acked)  # ["3", "4", "5"] on one partition
        for event_id in acked:
            await first.ack(events[event_id])
        await first.close()

        reopened = await consumers.make(constructor, name)

        assert_in_log_order(reopened, await self._collect(reopened, len(again)), _id, again)

    async def test_constructor_close_is_idempotent(self, make_connector: ConnectorMaker) -> None:
        constructor = await make_connector(_events(1))

        await constructor.close()
        await constructor.close()  # a second close returns too

    async def test_consumer_close_is_idempotent(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        consumer = await consumers.make(await make_connector(_events(1)), new_name("reader"))

        await consumer.close()
        await consumer.close()
