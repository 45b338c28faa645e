"""``conveyor.connect("memory://")``: the four memory adapters together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..._connect import Backend
from ._record_store import MemoryRecordStore
from ._role_scheduler import MemoryRoleScheduler
from ._streamer import MemoryEventStreamer
from ._timeout_store import MemoryTimeoutStore

__all__ = ["open_backend"]


@asynccontextmanager
async def open_backend(url: str = "memory://", **options: Any) -> AsyncIterator[Backend]:
    """In-process adapters (accepts ``clock=`` for the streamer's event timestamps)."""
    clock = options.pop("clock", None)
    if options:
        raise TypeError(f"unknown memory:// options: {', '.join(sorted(options))}")
    yield Backend(
        url,
        MemoryEventStreamer(clock=clock),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        MemoryTimeoutStore(),
    )
