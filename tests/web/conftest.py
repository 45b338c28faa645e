"""A seeded memory store (``tests/web/_seed.py``) behind the app, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from conveyor import connect
from conveyor._connect import Backend
from conveyor.web import create_app

from ._seed import Seeded, seed

TOKEN = "test-token-1234"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Site:
    backend: Backend
    runs: Seeded
    client: httpx.AsyncClient


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async with connect("memory://") as backend:
        runs = await seed(backend, waiting=14)  # 21 runs: two share a first character
        app = create_app(backend.record_store, token=TOKEN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield Site(backend, runs, client)
