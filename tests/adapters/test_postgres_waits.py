"""``wait`` on PostgreSQL: the process's waits share the one LISTEN connection, and when
it drops, every open wait re-reads the store (the tail's gap signal)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from _pg_support import migrated, pg_url

import conveyor
from conveyor import Builder, Record, Run
from conveyor.adapters.postgres import PostgresBackend

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres

SCHEMA = "waits_gap"
BOUND = 10.0


class Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    DONE = 2


@dataclass
class Doc:
    name: str = ""


async def done(run: Run[Doc, Status], payload: bytes) -> Status:
    return Status.DONE


Lookup = Callable[[str], Coroutine[Any, Any, Record]]


def counting(lookup: Lookup, seen: list[str]) -> Lookup:
    async def counted(run_id: str) -> Record:
        seen.append(run_id)
        return await lookup(run_id)

    return counted


async def until(check: Callable[[], bool]) -> None:
    """Return once ``check()`` holds (looked at every 10 ms), within ``BOUND``."""
    async with asyncio.timeout(BOUND):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def test_a_dropped_listen_connection_makes_open_waits_re_read_the_store(
    pg_url: str,
) -> None:
    await migrated(pg_url, SCHEMA)
    b = Builder("gap", Doc, Status)
    b.add_callback(Status.STARTED, done, Status.DONE)
    async with conveyor.connect(f"{pg_url}?schema={SCHEMA}") as backend:
        assert isinstance(backend, PostgresBackend)
        db = backend.database
        assert await db.wait_listening(BOUND)
        wf = b.build(backend.streamer, backend.record_store, backend.role_scheduler)
        async with wf.client() as client:
            # Given two open waits on runs parked at STARTED
            a = await client.trigger("a")
            c = await client.trigger("c")
            waits = [
                asyncio.create_task(client.wait("a", a, Status.DONE)),
                asyncio.create_task(client.wait("c", c, Status.DONE)),
            ]
            await until(lambda: wf._waits.watched() == 2)
            looked_up: list[str] = []
            store = backend.record_store
            store.lookup = counting(store.lookup, looked_up)  # type: ignore[method-assign, assignment]
            # When the LISTEN connection is terminated by the server
            conn = await asyncpg.connect(pg_url)
            try:
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", db.listener_pid)
            finally:
                await conn.close()
            # Then both waits re-read the store (no event came for either run)
            await until(lambda: {a, c} <= set(looked_up))
            assert not any(w.done() for w in waits)
            # And they still return once their runs complete
            await client.callback("a", Status.STARTED)
            await client.callback("c", Status.STARTED)
            async with asyncio.timeout(BOUND):
                runs = await asyncio.gather(*waits)
    assert [r.status for r in runs] == [Status.DONE, Status.DONE]
