"""``conveyor.connect(url, events="nats://…", roles="nats://…")``: what a NATS URL gives a
deployment whose records live elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..._connect import Parts
from ._connection import NatsConnection
from ._role_scheduler import NatsRoleScheduler
from ._streamer import NatsEventStreamer

__all__ = ["open_parts"]


@asynccontextmanager
async def open_parts(url: str, **options: Any) -> AsyncIterator[Parts]:
    """The event streamer and the role scheduler (leases in a key-value bucket) on ``url``
    (``nats://host:4222?prefix=…``), on one connection opened at first use. Closing
    releases the roles, then closes the connection.

    Raises ``AdapterError`` for a bad URL or option.
    """
    connection = NatsConnection(url, **options)
    streamer = NatsEventStreamer(connection)
    roles = NatsRoleScheduler(connection)
    try:
        yield Parts(url, streamer=streamer, role_scheduler=roles)
    finally:
        try:
            await roles.close()
            await streamer.close()
        finally:
            await connection.close()
