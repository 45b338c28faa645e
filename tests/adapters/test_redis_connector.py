"""A Redis stream written by someone else, read by ``RedisStreamConnector``: the connector
suite, and how entry fields map to ``ConnectorEvent``s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest
from _mysql_processes import until
from _redis_support import open_redis, redis_url

from conveyor.abc import ConnectorConstructor, ConnectorEvent, ReportsPending
from conveyor.adapters.redis import RedisClient, RedisStreamConnector
from conveyor.adaptertest import (
    ConnectorMaker,
    ConnectorReportsPendingSuite,
    ConnectorSuite,
    new_name,
)

__all__ = ["redis_url"]

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RedisClient]:
    async with open_redis(redis_url) as opened:
        yield opened


async def _seed(client: RedisClient, stream: str, events: Sequence[ConnectorEvent]) -> None:
    for e in events:
        await client.command(
            "seeding",
            "XADD",
            stream,
            "*",
            "id",
            e.id,
            "foreign_id",
            e.foreign_id,
            "type",
            e.type,
            "headers",
            json.dumps(dict(e.headers)),
        )


class _RedisConnectorMaker:
    """The seeded-connector fixture both connector suites run with."""

    @pytest.fixture
    async def make_connector(self, client: RedisClient) -> AsyncIterator[ConnectorMaker]:
        made: list[RedisStreamConnector] = []

        async def make(events: Sequence[ConnectorEvent]) -> ConnectorConstructor:
            stream = f"{client.options.key_prefix}:outside:{new_name('stream')}"
            await _seed(client, stream, events)
            connector = RedisStreamConnector(client, stream)
            made.append(connector)
            return connector

        yield make
        for connector in made:
            await connector.close()


class TestRedisStreamConnector(_RedisConnectorMaker, ConnectorSuite):
    pass


class TestRedisStreamConnectorReportsPending(_RedisConnectorMaker, ConnectorReportsPendingSuite):
    pass


async def test_entry_fields_map_to_the_event_and_other_fields_become_headers(
    client: RedisClient,
) -> None:
    # Given an outside stream with an entry (of an explicit ID) with none of the default
    # fields, and an entry of the default fields plus an extra one
    stream = f"{client.options.key_prefix}:outside:{new_name('mapped')}"
    await client.command("seeding", "XADD", stream, "5-1", "headers", "not json")
    await client.command(
        "seeding", "XADD", stream, "*", "foreign_id", "user-1", "type", "created", "region", "eu"
    )
    connector = RedisStreamConnector(client, stream)
    try:
        consumer = await connector.make(new_name("reader"))

        # When they are read
        second, first = await consumer.recv(2)

        # Then the entry ID stands in for a missing id field, extra fields are headers,
        # created_at comes from an auto ID's milliseconds (not from an explicit small ID)
        assert first.foreign_id == "user-1"
        assert first.type == "created"
        assert dict(first.headers) == {"region": "eu"}
        assert first.id.endswith("-0")
        assert first.created_at is not None
        assert second.id == "5-1"
        assert second.foreign_id == ""
        assert dict(second.headers) == {"headers": "not json"}
        assert second.created_at is None
    finally:
        await connector.close()


async def test_the_consumer_reports_what_is_pending_until_it_has_read_to_the_end(
    client: RedisClient,
) -> None:
    # Given an outside stream with two entries, and a consumer of it
    stream = f"{client.options.key_prefix}:outside:{new_name('pending')}"
    await _seed(client, stream, [ConnectorEvent(id=str(i), foreign_id=f"f{i}") for i in (1, 2)])
    connector = RedisStreamConnector(client, stream)
    try:
        consumer = await connector.make(new_name("reader"))
        assert isinstance(consumer, ReportsPending)
        # Then before any read something may be pending
        assert consumer.pending() >= 1
        # When both are read and acknowledged, and the next read waits for more
        events = await consumer.recv(10)
        assert [e.id for e in events] == ["1", "2"]
        assert consumer.pending() >= 2
        for event in events:
            await consumer.ack(event)
        waiting = asyncio.ensure_future(consumer.recv(10))
        await until("the consumer caught up", lambda: _zero(consumer), 5.0)
        # Then nothing is pending; when another entry comes, it is delivered and pending
        await _seed(client, stream, [ConnectorEvent(id="3", foreign_id="f3")])
        (third,) = await waiting
        assert third.id == "3"
        assert consumer.pending() >= 1
        await consumer.ack(third)
    finally:
        await connector.close()


async def _zero(consumer: ReportsPending) -> bool:
    return consumer.pending() == 0
