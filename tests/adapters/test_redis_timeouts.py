"""The Redis timeout store: the conformance suite, and wake-ups across processes.

Each case gets a fresh store on a key prefix of its own (``open_redis``: IDs count from 1
in it), whose keys are deleted at the end. A second client on the same prefix stands for
another process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from _redis_support import new_prefix, open_redis, redis_url

from conveyor.abc import TimeoutStore
from conveyor.adapters.redis._timeout_store import RedisTimeoutStore
from conveyor.adaptertest import TimeoutStoreSuite

__all__ = ["redis_url"]

pytestmark = pytest.mark.redis

WAIT = 5.0
_AT = datetime(2024, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


class TestRedisTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    async def timeout_store(self, redis_url: str) -> AsyncIterator[TimeoutStore]:
        async with open_redis(redis_url) as client:
            store = RedisTimeoutStore(client)
            yield store
            await store.close()


async def test_a_create_in_another_process_wakes_a_waiting_store(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = new_prefix()
    async with (
        open_redis(redis_url, prefix=prefix) as mine,
        open_redis(redis_url, prefix=prefix, cleanup=False) as theirs,
    ):
        # Given a store waiting for inserts (past its look at the stream: what it waits
        # for is a create after that), and another process's store on the same keys
        waiting = RedisTimeoutStore(mine)
        other = RedisTimeoutStore(theirs)
        reading = asyncio.Event()
        read = waiting._waiters.read

        async def noted(what: str, key: str, after: str | bytes, timeout: float) -> bool:
            reading.set()
            return await read(what, key, after, timeout)

        monkeypatch.setattr(waiting._waiters, "read", noted)
        waiter = asyncio.create_task(waiting.wait_for_insert("wf", 60.0))
        try:
            async with asyncio.timeout(WAIT):
                await reading.wait()

            # When the other creates a timeout for the workflow
            await other.create("wf", "fid", "run-1", 1, _AT, created_at=_AT)

            # Then the wait returns long before its timeout
            async with asyncio.timeout(WAIT):
                await waiter
            # ... and the timeout is there for both
            assert [t.run_id for t in await waiting.list("wf")] == ["run-1"]
        finally:
            waiter.cancel()
            await waiting.close()
            await other.close()


async def test_a_create_of_another_workflow_does_not_end_the_wait(redis_url: str) -> None:
    async with open_redis(redis_url) as client:
        # Given a store waiting briefly for inserts of one workflow
        store = RedisTimeoutStore(client)
        try:
            waiter = asyncio.create_task(store.wait_for_insert("wf", 0.3))
            # When a timeout of another workflow is created meanwhile
            await store.create("other", "fid", "run-1", 1, _AT, created_at=_AT)
            # Then the wait still runs to its timeout
            loop = asyncio.get_running_loop()
            started = loop.time()
            async with asyncio.timeout(WAIT):
                await waiter
            assert loop.time() - started >= 0.2
        finally:
            await store.close()


async def test_ids_are_per_key_prefix_and_survive_a_new_store(redis_url: str) -> None:
    prefix = new_prefix()
    async with open_redis(redis_url, prefix=prefix) as client:
        # Given a timeout created by one store
        first = RedisTimeoutStore(client)
        one = await first.create("wf", "fid", "run-1", 1, _AT, created_at=_AT)
        await first.close()

        # When another store on the same prefix creates one, and its due list is read
        second = RedisTimeoutStore(client)
        two = await second.create("wf", "fid", "run-2", 1, _AT + timedelta(hours=1), created_at=_AT)
        due = await second.list_valid("wf", 1, _AT)

        # Then IDs go on from the first store's, and the first timeout is due
        assert (one, two) == (1, 2)
        assert [t.id for t in due] == [1]
        await second.close()
