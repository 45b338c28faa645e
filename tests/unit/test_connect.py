"""conveyor.connect: one URL gives the four adapters."""

from __future__ import annotations

import pytest

import conveyor
from conveyor.adapters.memory import MemoryRecordStore


async def test_memory_url_opens_the_memory_adapters() -> None:
    async with conveyor.connect("memory://") as backend:
        assert isinstance(backend.record_store, MemoryRecordStore)
        assert backend.url == "memory://"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("orders.db", "not a backend URL", id="no-scheme"),
        pytest.param("redis://localhost", "unknown backend scheme 'redis'", id="unknown-scheme"),
    ],
)
async def test_bad_urls_raise_adapter_errors(url: str, message: str) -> None:
    with pytest.raises(conveyor.AdapterError, match=message):
        async with conveyor.connect(url):
            pass


async def test_unknown_options_are_rejected() -> None:
    with pytest.raises(TypeError, match="unknown memory:// options: colour"):
        async with conveyor.connect("memory://", colour="blue"):
            pass
