"""The Redis server for the test run, and helpers to open adapters on it.

The server is found at ``CONVEYOR_TEST_REDIS_URL`` (else ``redis://127.0.0.1:6379/0``).
When none answers (or redis-py is not installed) the Redis tests are skipped with the
reason, unless ``CI=true``: then they fail (``_services``). Tests that use ``redis_url``
carry the ``redis`` marker (tests/conftest.py). The server is shared with other tests (and
other sessions): every user of ``open_redis`` gets a key prefix of its own (a UUID) and
its keys are deleted at the end (``SCAN`` + ``DEL`` of that prefix, never ``FLUSHDB``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from _services import unavailable

try:
    import redis.asyncio
except ImportError:  # pragma: no cover - depends on the environment
    unavailable("Redis", "redis-py is not installed (pip install 'conveyor[redis]')", module=True)

from conveyor.adapters.redis import RedisClient, open_client

__all__ = ["FAST_ROLES", "delete_prefix", "new_prefix", "open_redis", "redis_url"]

_DEFAULT = "redis://127.0.0.1:6379/0"

FAST_ROLES: dict[str, Any] = {"role_ttl": 3.0, "role_renew": 0.25, "role_grace": 0.5}
"""Role scheduler timings for tests (takeover within 3.25 s)."""


async def _ping(url: str) -> None:
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis database the tests use (shared: use ``open_redis`` for a prefix)."""
    url = os.environ.get("CONVEYOR_TEST_REDIS_URL") or _DEFAULT
    try:
        asyncio.run(_ping(url))
    except Exception as exc:
        unavailable("Redis", f"no server answers at {url} (set CONVEYOR_TEST_REDIS_URL): {exc!r}")
    return url


def new_prefix() -> str:
    """A key prefix no other test uses."""
    return f"conveyor-test-{uuid.uuid4().hex}"


async def delete_prefix(client: RedisClient) -> int:
    """Delete every key under the client's ``key_prefix``; how many there were."""
    return await client.delete_prefix(client.options.keys.pattern)


@asynccontextmanager
async def open_redis(
    url: str, *, prefix: str | None = None, cleanup: bool = True, **options: Any
) -> AsyncIterator[RedisClient]:
    """A ``RedisClient`` on a fresh key prefix (or ``prefix``), whose keys are deleted at
    the end (unless ``cleanup`` is false: another client of the prefix cleans up)."""
    client = open_client(url, key_prefix=prefix or new_prefix(), **options)
    try:
        yield client
    finally:
        try:
            if cleanup:
                await delete_prefix(client)
        finally:
            await client.close()
