"""A throw-away MySQL/MariaDB database for the test run, and helpers to open adapters on it.

The server is found at ``CONVEYOR_TEST_MYSQL_URL`` (else the local server as ``root``
without a password). When none answers (or asyncmy is not installed) the MySQL tests are
skipped with the reason, unless ``CI=true``: then they fail (``_services``). Tests that
use ``mysql_url`` carry the ``mysql`` marker (tests/conftest.py). The session creates
``conveyor_test_<random>`` and drops it at the end, however many test modules use it.
Each user of ``open_mysql`` names a table prefix of its own, so suites do not share rows.
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
    import asyncmy
except ImportError:  # pragma: no cover - depends on the environment
    unavailable("MySQL", "asyncmy is not installed (pip install 'conveyor[mysql]')", module=True)

from conveyor.adapters.mysql._database import Database
from conveyor.adapters.mysql._options import split_url
from conveyor.adapters.mysql._schema import migrate

__all__ = ["FAST_ROLES", "admin_sql", "mysql_url", "open_mysql", "with_prefix"]

_CANDIDATES = ("mysql://root@127.0.0.1:3306/test",)
_state: dict[str, Any] = {"users": 0, "url": None, "admin": None, "name": None}
_migrated: set[str] = set()


async def admin_sql(url: str, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of its own (outside any pool); its rows."""
    parts = urlsplit(url)
    conn = await asyncmy.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=parts.path.lstrip("/") or None,
        autocommit=True,
        connect_timeout=3,
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args or None)
            return list(await cur.fetchall())
    finally:
        conn.close()


def _find_server() -> tuple[str | None, list[str]]:
    configured = os.environ.get("CONVEYOR_TEST_MYSQL_URL")
    failures = []
    for url in (configured,) if configured else _CANDIDATES:
        try:
            asyncio.run(admin_sql(url, "SELECT 1"))
        except Exception as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        return url, []
    return None, failures


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """URL of this run's throw-away database (created on first use, dropped at the end)."""
    if _state["url"] is None:
        admin, failures = _find_server()
        if admin is None:
            unavailable(
                "MySQL", "no server answers (set CONVEYOR_TEST_MYSQL_URL): " + "; ".join(failures)
            )
        name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(
            admin_sql(admin, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        )
        _state.update(url=_with_database(admin, name), admin=admin, name=name)
    _state["users"] += 1
    try:
        yield str(_state["url"])
    finally:
        _state["users"] -= 1
        if _state["users"] == 0:
            asyncio.run(admin_sql(_state["admin"], f"DROP DATABASE `{_state['name']}`"))
            _state["url"] = None
            _migrated.clear()


def with_prefix(url: str, prefix: str) -> str:
    """``url`` with ``table_prefix=prefix`` in its query string."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}table_prefix={prefix}"


@asynccontextmanager
async def open_mysql(
    url: str, prefix: str, *, fresh: bool = False, **options: Any
) -> AsyncIterator[Database]:
    """A ``Database`` on the migrated tables of ``prefix`` (emptied first with ``fresh``)."""
    if prefix not in _migrated:
        await migrate(url, table_prefix=prefix)
        _migrated.add(prefix)
    options.setdefault("pool_min", 1)
    args, settings = split_url(url, {"table_prefix": prefix, **options})
    db = Database(args, settings)
    try:
        if fresh:  # TRUNCATE also restarts AUTO_INCREMENT (suites expect IDs from 1)
            existing = await admin_sql(
                url,
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
            )
            names = {str(r[0]) for r in existing}
            for table in db.tables.TABLES:
                if table != "schema_migrations" and prefix + table in names:
                    await admin_sql(url, f"TRUNCATE TABLE {db.tables.names[table]}")
        yield db
    finally:
        await db.close()


FAST_ROLES: dict[str, Any] = {"role_ttl": 3.0, "role_renew": 0.25, "role_grace": 0.5}
"""Role scheduler timings for tests (takeover within 3.25 s)."""
