"""``conveyor.connect(url, events="nats://…")``: what a NATS URL gives a deployment whose
records live elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..._connect import Parts
from ._connection import NatsConnection
from ._streamer import NatsEventStreamer

__all__ = ["open_parts"]


@asynccontextmanager
async def open_parts(url: str, **options: Any) -> AsyncIterator[Parts]:
    """The event streamer on ``url`` (``nats://host:4222?prefix=…``), on one connection
    opened at first use. Closing closes it.

    Raises ``AdapterError`` for a bad URL or option.
    """
    connection = NatsConnection(url, **options)
    streamer = NatsEventStreamer(connection)
    try:
        yield Parts(url, streamer=streamer)
    finally:
        try:
            await streamer.close()
        finally:
            await connection.close()
