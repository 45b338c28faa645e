"""``conveyor.connect(url, events="redis://…", roles="redis://…")``: the parts a Redis URL
gives a deployment whose records live elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..._connect import Parts
from ._client import open_client
from ._role_scheduler import RedisRoleScheduler
from ._streamer import RedisEventStreamer

__all__ = ["open_parts"]


@asynccontextmanager
async def open_parts(url: str, **options: Any) -> AsyncIterator[Parts]:
    """The event streamer and role scheduler on ``url`` (``redis://host:6379/0?key_prefix=…``),
    sharing one connection pool. Closing releases the roles, then the connections.

    Raises ``AdapterError`` for a bad URL or option; connects lazily, at first use.
    """
    client = open_client(url, **options)
    streamer = RedisEventStreamer(client)
    roles = RedisRoleScheduler(client)
    try:
        yield Parts(url, streamer=streamer, role_scheduler=roles)
    finally:
        try:
            await roles.close()
            await streamer.close()
        finally:
            await client.close()
