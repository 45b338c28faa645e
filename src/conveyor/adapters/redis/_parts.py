"""``conveyor.connect("redis://…")``: the four adapters on one Redis, or some of them for a
deployment whose records live elsewhere (``connect(url, events="redis://…",
roles="redis://…", timeouts="redis://…")``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..._connect import Backend
from ._client import RedisClient, open_client
from ._record_store import RedisRecordStore
from ._role_scheduler import RedisRoleScheduler
from ._streamer import RedisEventStreamer
from ._timeout_store import RedisTimeoutStore

__all__ = ["RedisBackend", "open_backend"]


@dataclass(frozen=True, slots=True, repr=False)
class RedisBackend(Backend):
    """A ``Backend`` whose adapters share one ``RedisClient`` (one connection pool); its
    ``repr`` masks the URL's password."""

    client: RedisClient


@asynccontextmanager
async def open_backend(url: str, **options: Any) -> AsyncIterator[RedisBackend]:
    """The streamer, record store, role scheduler and timeout store on ``url``
    (``redis://host:6379/0?key_prefix=…``), sharing one connection pool, opened lazily (at
    first use). The store appends each write's event to the streamer itself unless
    ``publish_events=false``. Closing releases the roles, then the connections.

    Raises ``AdapterError`` for a bad URL or option.
    """
    client = open_client(url, **options)
    streamer = RedisEventStreamer(client)
    publishing = streamer if client.options.publish_events else None
    store = RedisRecordStore(client, events=publishing)
    roles = RedisRoleScheduler(client)
    timeouts = RedisTimeoutStore(client)
    try:
        yield RedisBackend(url, streamer, store, roles, timeouts, client=client)
    finally:
        try:
            await roles.close()
            await streamer.close()
            await timeouts.close()
            await store.close()
        finally:
            await client.close()
