"""Cases for connector consumers that report whether they are behind (``ReportsPending``)."""

from __future__ import annotations

import asyncio

from .._capabilities import ReportsPending
from .._connector import ConnectorConsumer, ConnectorEvent
from ._connector import ConnectorCases, ConnectorMaker, Consumers
from ._fixtures import new_name

__all__ = ["ConnectorReportsPendingSuite"]


def _seed(count: int) -> list[ConnectorEvent]:
    return [ConnectorEvent(id=str(i), foreign_id=f"fid-{i}") for i in range(1, count + 1)]


def _pending(consumer: ConnectorConsumer) -> int:
    assert isinstance(consumer, ReportsPending), "the consumer does not report pending()"
    return consumer.pending()


class ConnectorReportsPendingSuite(ConnectorCases):
    """Cases for a connector whose consumers claim ``ReportsPending``: the engine counts a
    workflow idle (``run_until_idle``) only once its connectors report ``0``.

    Override ``make_connector`` as for ``ConnectorSuite`` (the same fixture passes both).
    ``pending()`` is a hint: the cases ask for a positive number while a seeded event has
    not been handed out, and for ``0`` once every event was handed out and acknowledged
    and a ``recv`` is waiting at the end of the stream (a backend may only know it is
    caught up after a read that found the end). ``wait_timeout`` bounds every wait.
    """

    async def test_consumers_report_pending(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        consumer = await consumers.make(await make_connector(_seed(1)), new_name("reader"))

        assert isinstance(consumer, ReportsPending)

    async def test_pending_is_positive_while_a_seeded_event_waits_to_be_handed_out(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        consumer = await consumers.make(await make_connector(_seed(3)), new_name("reader"))

        assert _pending(consumer) > 0, "three events wait, none handed out"
        for event in await self._collect(consumer, 2):
            await consumer.ack(event)
        assert _pending(consumer) > 0, "the third event waits"

    async def test_pending_falls_to_zero_once_everything_is_handed_out_and_acknowledged(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        consumer = await consumers.make(await make_connector(_seed(3)), new_name("reader"))
        for event in await self._collect(consumer, 3):
            await consumer.ack(event)

        waiting = asyncio.create_task(consumer.recv())  # reads to the end, then waits there
        try:
            await self._until_caught_up(consumer, waiting)
        finally:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)

    async def test_unacknowledged_events_are_pending_for_a_reopened_consumer(
        self, make_connector: ConnectorMaker, consumers: Consumers
    ) -> None:
        constructor = await make_connector(_seed(2))
        name = new_name("reader")
        first = await consumers.make(constructor, name)
        await self._collect(first, 2)
        await first.close()  # nothing acknowledged: both come again

        reopened = await consumers.make(constructor, name)

        assert _pending(reopened) > 0

    async def _until_caught_up(
        self, consumer: ConnectorConsumer, waiting: asyncio.Task[object]
    ) -> None:
        """Poll ``pending()`` until it is 0 (failing at ``wait_timeout``), while ``waiting``,
        a ``recv`` at the end of the stream, must not return."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while _pending(consumer) != 0:
            assert not waiting.done(), "recv returned (or failed) past the last event"
            assert loop.time() < deadline, (
                f"pending() is still {_pending(consumer)} with every event handed out and "
                "acknowledged and a recv waiting at the end"
            )
            await asyncio.sleep(0.005)  # a condition poll with a deadline, not a fixed wait
