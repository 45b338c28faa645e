"""A throw-away PostgreSQL database for the test run, and helpers to open adapters on it.

The server is found at ``CONVEYOR_TEST_POSTGRES_URL`` (else the local server, as user
``postgres`` or ``root``). When none answers (or asyncpg is not installed) the PostgreSQL
tests are skipped with the reason, unless ``CI=true``: then they fail (``_services``). Tests
that use ``pg_url`` carry the ``postgres`` marker. The session creates
``conveyor_test_<random>`` and drops it at the end, however many test modules use it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from _services import unavailable

try:
    import asyncpg
except ImportError:  # pragma: no cover - depends on the environment
    unavailable(
        "PostgreSQL", "asyncpg is not installed (pip install 'conveyor[postgres]')", module=True
    )

from conveyor.adapters.postgres import PostgresDatabase, PostgresOptions, migrate

__all__ = ["FAST_ROLES", "migrated", "open_database", "pg_url", "with_database"]

_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://root@127.0.0.1:5432/postgres",
)
_TABLES = (
    "records",
    "outbox",
    "topics",
    "events",
    "cursors",
    "timeouts",
    "roles",
    "members",
    "listeners",
    "failures",
    "history",
    "definitions",
    "settings",
)

_state: dict[str, Any] = {"users": 0, "url": None, "admin": None}
_migrated: set[tuple[str, str]] = set()


async def _answers(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=2.0)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def _find_server() -> tuple[str | None, list[str]]:
    configured = os.environ.get("CONVEYOR_TEST_POSTGRES_URL")
    candidates = (configured,) if configured else _CANDIDATES
    failures = []
    for url in candidates:
        error = asyncio.run(_answers(url))
        if error is None:
            return url, []
        failures.append(f"{url}: {error}")
    return None, failures


def with_database(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at database ``name`` instead."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def _admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=5.0)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of this run's throw-away database (created on first use, dropped at the end)."""
    if _state["url"] is None:
        admin, failures = _find_server()
        if admin is None:
            unavailable(
                "PostgreSQL",
                "no server answers (set CONVEYOR_TEST_POSTGRES_URL): " + "; ".join(failures),
            )
        name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
        _state.update(url=with_database(admin, name), admin=admin, name=name)
    _state["users"] += 1
    try:
        yield str(_state["url"])
    finally:
        _state["users"] -= 1
        if _state["users"] == 0:
            asyncio.run(_admin(_state["admin"], f'DROP DATABASE "{_state["name"]}" WITH (FORCE)'))
            _state["url"] = None
            _migrated.clear()


async def migrated(url: str, schema: str) -> None:
    """Apply the migrations to ``schema`` once per run."""
    if (url, schema) in _migrated:
        return
    await migrate(url, schema=schema)
    _migrated.add((url, schema))


@asynccontextmanager
async def open_database(
    url: str, schema: str, *, fresh: bool = False, **options: Any
) -> AsyncIterator[PostgresDatabase]:
    """A ``PostgresDatabase`` on a migrated ``schema`` (emptied first with ``fresh``)."""
    await migrated(url, schema)
    db = await PostgresDatabase.open(url, PostgresOptions(schema=schema, pool_min=1, **options))
    try:
        if fresh:
            tables = ", ".join(db.tables.names[t] for t in _TABLES)

            async def truncate(conn: Any) -> None:
                await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY")

            await db.run("emptying the tables", truncate)
        yield db
    finally:
        await db.close()


FAST_ROLES: dict[str, Any] = {"role_ttl": 3.0, "role_renew": 0.25, "role_grace": 0.5}
"""Role scheduler timings for tests (takeover within 3.25 s)."""
