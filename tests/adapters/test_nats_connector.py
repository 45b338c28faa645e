"""The NATS connector: the conformance suite on a stream seeded per case, and the mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import nats
import pytest
from _nats_support import delete_prefix, nats_url, new_prefix
from nats.js.api import StreamConfig

from conveyor.abc import ConnectorConstructor, ConnectorEvent
from conveyor.adapters.nats import NatsConnector
from conveyor.adapters.nats._connector import EVENT_TYPE_HEADER, FOREIGN_ID_HEADER
from conveyor.adaptertest import ConnectorMaker, ConnectorReportsPendingSuite, ConnectorSuite

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
