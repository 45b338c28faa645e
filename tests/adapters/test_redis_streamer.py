"""Redis Streams event streamer: the conformance suites, IDs that spread evenly over
shards, redelivery of a dead consumer's events, trimming, and a workflow run until idle.

Every test has a key prefix of its own (``open_redis``), deleted at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _redis_support import open_redis, redis_url

from conveyor.abc import EventStreamer
from conveyor.adapters.redis import RedisClient, RedisEventStreamer
from conveyor.adaptertest import (
    EventStreamerSuite,
    ReportsPendingSuite,
    TailsTopicsSuite,
)

__all__ = ["redis_url"]

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RedisClient]:
    async with open_redis(redis_url) as opened:
        yield opened


class OnRedis:
    @pytest.fixture
    async def streamer(self, client: RedisClient) -> AsyncIterator[EventStreamer]:
        streamer = RedisEventStreamer(client)
        yield streamer
        await streamer.close()


class TestRedisEventStreamer(OnRedis, EventStreamerSuite):
    pass


class TestRedisReceiversReportPending(OnRedis, ReportsPendingSuite):
    pass


class TestRedisTails(OnRedis, TailsTopicsSuite):
    pass
