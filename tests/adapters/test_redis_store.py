"""The Redis record store passes the record-store suites against the real server.

Each case gets a fresh store on a key prefix of its own (``open_redis``), whose keys are
deleted at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _redis_support import open_redis, redis_url

from conveyor.abc import RecordStore
from conveyor.adapters.redis._record_store import RedisRecordStore
from conveyor.adaptertest import (
    KeepsDefinitionsSuite,
    KeepsHistorySuite,
    ListsRunsSuite,
    PinsEventLocationSuite,
    RecordsFailuresSuite,
    RecordStoreSuite,
)

__all__ = ["redis_url"]

pytestmark = pytest.mark.redis


class _Fresh:
    @pytest.fixture
    async def store(self, redis_url: str) -> AsyncIterator[RecordStore]:
        async with open_redis(redis_url) as client:
            store = RedisRecordStore(client)
            yield store
            await store.close()


class TestRedisRecordStore(_Fresh, RecordStoreSuite):
    pass


class TestRedisRecordStoreFailures(_Fresh, RecordsFailuresSuite):
    pass


class TestRedisRecordStoreHistory(_Fresh, KeepsHistorySuite):
    pass


class TestRedisRecordStoreListing(_Fresh, ListsRunsSuite):
    pass


class TestRedisRecordStoreDefinitions(_Fresh, KeepsDefinitionsSuite):
    pass


class TestRedisRecordStoreEventLocation(_Fresh, PinsEventLocationSuite):
    pass
