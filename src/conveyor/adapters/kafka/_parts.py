"""``conveyor.connect(url, events="kafka://…")``: what a Kafka URL gives a deployment whose
records live elsewhere (the event streamer only: Kafka keeps no roles or timeouts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..._connect import Parts
from ._streamer import KafkaEventStreamer

__all__ = ["open_parts"]


@asynccontextmanager
async def open_parts(url: str, **options: Any) -> AsyncIterator[Parts]:
    """The event streamer on ``url`` (``kafka://host:9092,...?partitions=3&…``), connecting
    at first use. Raises ``AdapterError`` for a bad URL or option."""
    streamer = KafkaEventStreamer(url, **options)
    try:
        yield Parts(url, streamer=streamer)
    finally:
        await streamer.close()
