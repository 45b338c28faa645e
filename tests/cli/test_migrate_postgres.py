"""`conveyor migrate` on PostgreSQL says what it did (created, upgraded, up to date), with
the password masked. Each case has its own installation: a fresh ``table_prefix`` in one
schema of the run's throw-away database (``_pg_support``)."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from _pg_support import pg_url
from click.testing import CliRunner

from conveyor.adapters.postgres import LATEST_VERSION
from conveyor.adapters.postgres._options import Tables
from conveyor.adapters.postgres._schema import migrations
from conveyor.cli import cli

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres

SCHEMA = "cli_migrate"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _installation(pg_url: str) -> tuple[str, str, str]:
    """A fresh table prefix, its URL (with a password, which the server ignores) and how
    that URL is shown."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    parts = urlsplit(pg_url)
    netloc = f"{parts.username}:hunter2@{parts.hostname}:{parts.port or 5432}"
    query = f"schema={SCHEMA}&table_prefix={prefix}"
    url = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    shown = urlunsplit((parts.scheme, netloc.replace("hunter2", "***"), parts.path, query, ""))
    return prefix, url, shown


async def _install_up_to(pg_url: str, tables: Tables, version: int) -> None:
    """The installation as a conveyor whose latest migration was ``version`` left it."""
    conn = await asyncpg.connect(pg_url)
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {tables.schema}")
            await conn.execute(
                f"CREATE TABLE {tables.schema_migrations} (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in migrations()[:version]:
                await conn.execute(tables.substitute(migration.sql))
                await conn.execute(
                    f"INSERT INTO {tables.schema_migrations} (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
    finally:
        await conn.close()


def test_migrate_of_a_new_installation_says_it_created_the_schema_and_its_tables(
    pg_url: str,
) -> None:
    prefix, url, shown = _installation(pg_url)

    code, out = invoke("migrate", "--store", url)

    tables = ", ".join(prefix + t for t in Tables.TABLES)
    assert (code, out) == (
        0,
        f"created schema version {LATEST_VERSION} in {shown} (schema {SCHEMA}: tables {tables})\n",
    )
    assert "hunter2" not in out


def test_migrate_of_a_migrated_installation_says_it_is_up_to_date(pg_url: str) -> None:
    _, url, shown = _installation(pg_url)
    assert invoke("migrate", "--store", url)[0] == 0

    code, out = invoke("migrate", "--store", url)

    assert (code, out) == (0, f"schema is up to date (version {LATEST_VERSION}) in {shown}\n")


def test_migrate_of_an_older_installation_says_what_it_upgraded(pg_url: str) -> None:
    # Given an installation at version 2 (failures and history)
    prefix, url, shown = _installation(pg_url)
    asyncio.run(_install_up_to(pg_url, Tables(SCHEMA, prefix), 2))

    # When it is migrated
    code, out = invoke("migrate", "--store", url)

    # Then the output names both versions, each step applied and the table it created
    steps = ", ".join(f"{m.version} {m.name}" for m in migrations()[2:])
    assert steps == "3 list_runs, 4 definitions, 5 run_id_prefix, 6 settings"
    assert (code, out) == (
        0,
        f"upgraded schema from version 2 to {LATEST_VERSION} in {shown}: {steps} "
        f"(schema {SCHEMA}: new tables {prefix}definitions, {prefix}settings)\n",
    )
