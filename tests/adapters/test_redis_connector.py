"""A Redis stream written by someone else, read by ``RedisStreamConnector``: the connector
suite, and how entry fields map to ``ConnectorEvent``s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import pytest
from _redis_support import open_redis, redis_url

from conveyor.abc import ConnectorConstructor, ConnectorEvent
from conveyor.adapters.redis import RedisClient, RedisStreamConnector
from conveyor.adaptertest import ConnectorMaker, ConnectorSuite, new_name

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


class TestRedisStreamConnector(ConnectorSuite):
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
