"""``conveyor.connect(url, events="rabbitmq-stream://…")``: what a RabbitMQ URL gives a
deployment whose records (and roles) live elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..._connect import Parts
from ._streamer import RabbitEventStreamer

__all__ = ["open_parts"]


@asynccontextmanager
async def open_parts(url: str, **options: Any) -> AsyncIterator[Parts]:
    """The event streamer on ``url`` (``rabbitmq-stream://host:5552/?prefix=…``), on one
    connection opened at first use; RabbitMQ gives no roles or timeouts (take them from
    the record store's URL or Redis). Raises ``AdapterError`` for a bad URL or option.
    """
    streamer = RabbitEventStreamer(url, **options)
    try:
        yield Parts(url, streamer=streamer)
    finally:
        await streamer.close()
