"""Poison rows on real backends affect their run alone: with one run's stored run state
corrupted and another's outbox headers, a worker pauses the first (saying why), sends the
second's event again from its record, completes every other run, and `conveyor runs list`
shows the healthy runs and marks the bad one.
"""

from __future__ import annotations

import asyncio
import enum
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from _pg_support import migrated, pg_url

import conveyor
from conveyor import Builder, DecodeError, Run, RunState
from conveyor.adapters.postgres import PostgresBackend

__all__ = ["pg_url"]

BOUND = 30.0


class Status(enum.IntEnum):
    UNKNOWN = 0
    NEW = 1
    DONE = 2


@dataclass
class Job:
    n: int = 0


async def finish(run: Run[Job, Status]) -> Status:
    return Status.DONE


builder = Builder("poisoned", Job, Status)
builder.add_step(Status.NEW, finish, Status.DONE)

Corrupt = Callable[[str, str], Awaitable[None]]
"""(what, run_id): break that run's ``run_state`` or its outbox row's ``headers``."""


@dataclass
class Backend:
    url: str
    corrupt: Corrupt
    prepare: Callable[[], Awaitable[None]]


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "poison.db"
    url = f"sqlite:///{path}"

    async def corrupt(what: str, run_id: str) -> None:
        table, column, value = (
            ("records", "run_state", 42) if what == "run_state" else ("outbox", "headers", "x")
        )
        with sqlite3.connect(path) as conn:
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE run_id = ?", (value, run_id))

    async def prepare() -> None:
        await conveyor.migrate(url)

    return Backend(url, corrupt, prepare)


def _postgres(admin: str) -> Backend:
    async def corrupt(what: str, run_id: str) -> None:
        sql = (
            "UPDATE poison_runs.records SET run_state = 42 WHERE run_id = $1"
            if what == "run_state"
            else "UPDATE poison_runs.outbox SET headers = 'garbage'::bytea WHERE run_id = $1"
        )
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql, run_id)
        finally:
            await conn.close()

    async def prepare() -> None:
        await migrated(admin, "poison_runs")

    return Backend(f"{admin}?schema=poison_runs", corrupt, prepare)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return _sqlite(tmp_path)
    return _postgres(request.getfixturevalue("pg_url"))


async def test_poison_rows_affect_their_run_alone(backend: Backend) -> None:
    url, corrupt = backend.url, backend.corrupt
    await backend.prepare()
    async with conveyor.connect(url) as opened:
        direct = isinstance(opened, PostgresBackend)  # PostgreSQL keeps no outbox rows
        wf = builder.build(opened.streamer, opened.record_store, opened.role_scheduler)
        async with wf.client() as client:
            # Given runs triggered while no worker runs, two of them then corrupted
            bad = await client.trigger("bad-state")
            lost = await client.trigger("lost-headers")
            good = [await client.trigger(f"good-{i}") for i in range(20)]
            await corrupt("run_state", bad)
            if not direct:
                await corrupt("headers", lost)
            with pytest.raises(DecodeError) as caught:
                await client.lookup(bad)
            assert caught.value.run_id == bad
        # When a worker runs
        async with wf, asyncio.timeout(BOUND):
            for i, rid in enumerate(good):
                await wf.wait(f"good-{i}", rid, Status.DONE)
            # Then the run that lost its outbox headers completes too
            await wf.wait("lost-headers", lost, Status.DONE)
            # And the one whose run state broke is paused, saying why
            while True:
                try:
                    paused = await wf.lookup(bad)
                except DecodeError:
                    await asyncio.sleep(0.01)
                    continue
                break
    assert paused.run_state is RunState.PAUSED
    assert paused.meta.run_state_reason.startswith("quarantined: undecodable record")
    assert "run_state 42" in paused.meta.run_state_reason


async def test_runs_list_shows_the_healthy_rows_and_marks_a_bad_one(backend: Backend) -> None:
    url, corrupt = backend.url, backend.corrupt
    await backend.prepare()
    async with conveyor.connect(url) as opened:
        wf = builder.build(opened.streamer, opened.record_store, opened.role_scheduler)
        async with wf.client() as client:
            bad = await client.trigger("listed-bad")
            await client.trigger("listed-good")
    await corrupt("run_state", bad)
    listed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conveyor",
        "runs",
        "list",
        "--store",
        url,
        "--workflow",
        "poisoned",
        "--limit",
        "100",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "250"},
    )
    out, err = await listed.communicate()
    assert listed.returncode == 0, err.decode()
    text = out.decode()
    assert "listed-good" in text
    assert "UNDECODABLE (undecodable record: run_state 42" in text
