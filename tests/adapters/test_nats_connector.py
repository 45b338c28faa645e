"""The NATS connector: the conformance suite on a stream seeded per case, and the mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import nats
import pytest
from _nats_support import delete_prefix, nats_url, new_prefix
from nats.js.api import StreamConfig

from conveyor.abc import ConnectorConstructor, ConnectorEvent
from conveyor.adapters.nats import NatsConnector
from conveyor.adapters.nats._connector import EVENT_TYPE_HEADER, FOREIGN_ID_HEADER
from conveyor.adaptertest import ConnectorMaker, ConnectorReportsPendingSuite, ConnectorSuite
from conveyor.adaptertest._fixtures import WAIT_TIMEOUT

__all__ = ["nats_url"]

pytestmark = pytest.mark.nats


async def seed(url: str, stream: str, subject: str, events: Sequence[ConnectorEvent]) -> None:
    """A stream ``stream`` on ``subject`` holding ``events``, as an outside producer writes
    them (the module docstring of ``_connector`` maps them back)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
        for event in events:
            headers = {"Nats-Msg-Id": event.id, FOREIGN_ID_HEADER: event.foreign_id}
            if event.type:
                headers[EVENT_TYPE_HEADER] = event.type
            headers.update(event.headers)
            await js.publish(subject, b"", headers=headers)
    finally:
        await nc.close()


class _NatsConnectorMaker:
    """The seeded-connector fixture both connector suites run with."""

    @pytest.fixture
    async def make_connector(self, nats_url: str) -> AsyncIterator[ConnectorMaker]:
        prefix = new_prefix("c")
        made: list[NatsConnector] = []

        async def make(events: Sequence[ConnectorEvent]) -> ConnectorConstructor:
            stream = f"{prefix}_outside{len(made)}"
            subject = f"{prefix}.outside{len(made)}.created"
            await seed(nats_url, stream, subject, events)
            connector = NatsConnector(nats_url, stream=stream, prefix=prefix)
            made.append(connector)
            return connector

        try:
            yield make
        finally:
            for connector in made:
                await connector.close()
            await delete_prefix(nats_url, prefix)


class TestNatsConnector(_NatsConnectorMaker, ConnectorSuite):
    pass


class TestNatsConnectorReportsPending(_NatsConnectorMaker, ConnectorReportsPendingSuite):
    pass


async def test_a_consumer_at_max_ack_pending_waits_for_room_and_leaves_no_pull_on_the_server(
    nats_url: str,
) -> None:
    # Given a consumer whose cursor allows 3 unacknowledged events, holding 3 of 10
    prefix = new_prefix("c")
    stream, subject = f"{prefix}_outside", f"{prefix}.outside.created"
    events = [ConnectorEvent(id=str(i), foreign_id=f"fid-{i}") for i in range(10)]
    await seed(nats_url, stream, subject, events)
    connector = NatsConnector(nats_url, stream=stream, prefix=prefix, max_ack_pending=3)
    try:
        consumer = await connector.make("reader")
        held: list[ConnectorEvent] = []
        while len(held) < 3:
            held += await consumer.recv(10)
        assert [e.foreign_id for e in held] == ["fid-0", "fid-1", "fid-2"]

        # When it is asked for more
        more = asyncio.ensure_future(consumer.recv(10))
        async with asyncio.timeout(WAIT_TIMEOUT):
            await consumer._reader._starved.wait()

        # Then it waits for room without a pull: none is kept waiting on the server
        _, js = await connector._conn.client()
        info = await js.consumer_info(stream, consumer._reader.consumer)
        assert (info.num_waiting, info.num_ack_pending) == (0, 3)
        assert not more.done()

        # ... and moving the cursor past one event makes room for exactly the next
        await consumer.ack(held[0])
        async with asyncio.timeout(WAIT_TIMEOUT):
            assert [e.foreign_id for e in await more] == ["fid-3"]
        await consumer.close()
        info = await js.consumer_info(stream, consumer._reader.consumer)
        assert info.num_waiting == 0
    finally:
        await connector.close()
        await delete_prefix(nats_url, prefix)
