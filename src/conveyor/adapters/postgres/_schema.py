"""The versioned schema shipped in ``migrations/NNNN_name.sql``, and applying it.

``migrate`` runs every pending migration in one transaction under an advisory lock, so
several processes starting with ``migrate=True`` at once apply each migration exactly once;
the applied versions are kept in the ``schema_migrations`` table of the schema. A schema
at a newer version than this code knows (migrated by a newer conveyor, then rolled back)
is refused by ``migrate`` and by opening the backend, as SQLite refuses such a file: old
code must not run on a schema it does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..._errors import AdapterError
from ..._kit._hash import fnv1a64
from ..._migration import AppliedMigration, MigrationReport
from ._database import Connection, Database
from ._errors import translate
from ._options import PostgresOptions, Tables, split_url

__all__ = [
    "LATEST_VERSION",
    "Migration",
    "check_schema",
    "migrate",
    "migrate_report",
    "migrations",
]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: ``version`` counts from 1."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped in the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise AdapterError("conveyor's PostgreSQL migrations are not numbered 1, 2, 3, ...")
    return found


LATEST_VERSION = len(migrations())


def _lock_key(tables: Tables) -> int:
    """A signed 64-bit advisory lock key for migrating this installation."""
    key = fnv1a64(f"conveyor-migrate:{tables.schema}:{tables.prefix}")
    return key - (1 << 64) if key >= 1 << 63 else key


async def _tables(conn: Connection, tables: Tables) -> list[str]:
    """The installation's tables that exist (their names in the schema, unquoted)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM unnest($1::text[]) WITH ORDINALITY AS t(qualified, i) "
        "JOIN pg_class c ON c.oid = to_regclass(t.qualified) ORDER BY t.i",
        list(tables.names.values()),
    )
    return [str(row["relname"]) for row in rows]


async def apply(conn: Connection, tables: Tables, schema: str = "") -> MigrationReport:
    """Apply pending migrations on ``conn``; returns what it did (naming ``schema``, the
    unquoted name of ``tables``' schema)."""
    applied: list[AppliedMigration] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(tables))
        before = await _tables(conn, tables)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {tables.schema}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {tables.schema_migrations} ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(f"SELECT version FROM {tables.schema_migrations}")
        done = {row["version"] for row in rows}
        if done and max(done) > LATEST_VERSION:
            raise _newer(tables, max(done))
        for migration in migrations():
            if migration.version in done:
                continue
            await conn.execute(tables.substitute(migration.sql))
            await conn.execute(
                f"INSERT INTO {tables.schema_migrations} (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(AppliedMigration(migration.version, migration.name))
        after = await _tables(conn, tables) if applied else before
    from_version = max(done, default=0)
    return MigrationReport(
        created=not done,
        from_version=from_version,
        to_version=max([from_version, *(m.version for m in applied)]),
        applied=tuple(applied),
        tables=tuple(t for t in after if t not in before),
        schema=schema,
    )


async def migrate(url: str, **options: Any) -> list[int]:
    """Create or upgrade conveyor's schema at ``url``.

    Idempotent and safe to run from several processes at once. Accepts the backend's
    options (``schema``, ``table_prefix``, also as URL query parameters). Returns the
    versions it applied (empty when the schema was up to date; ``migrate_report`` tells
    more). Raises ``AdapterError``.
    """
    return [m.version for m in (await migrate_report(url, **options)).applied]


async def migrate_report(url: str, **options: Any) -> MigrationReport:
    """``migrate``, returning what it did (``conveyor migrate --store URL`` prints it)."""
    options.pop("migrate", None)
    dsn, settings = split_url(url, options)
    db = Database(dsn, settings)
    conn = await db.connect(application_name="conveyor-migrate")
    try:
        return await apply(conn, db.tables, settings.schema)
    except AdapterError:
        raise
    except Exception as exc:
        raise translate(exc, "migrating the schema") from exc
    finally:
        await conn.close()


async def check_schema(db: Database, options: PostgresOptions) -> None:
    """Raise ``AdapterError`` unless the schema is at the version this code needs."""
    tables = db.tables

    async def version(conn: Connection) -> int | None:
        exists = await conn.fetchval("SELECT to_regclass($1)", tables.schema_migrations)
        if exists is None:
            return None
        value = await conn.fetchval(f"SELECT max(version) FROM {tables.schema_migrations}")
        return int(value) if value is not None else None

    found = await db.run("checking the schema version", version, retry=True)
    if found is not None and found > LATEST_VERSION:
        raise _newer(tables, found)
    if found is None or found < LATEST_VERSION:
        state = "missing" if found is None else f"at version {found}"
        raise AdapterError(
            f"conveyor's schema {options.schema!r} is {state}, this version needs "
            f"{LATEST_VERSION}: run `conveyor migrate --store <url>` or open the backend "
            "with migrate=True"
        )


def _newer(tables: Tables, found: int) -> AdapterError:
    prefix = f" (table prefix {tables.prefix!r})" if tables.prefix else ""
    return AdapterError(
        f"conveyor's schema {tables.schema}{prefix} is at version {found}, newer than "
        f"this conveyor knows ({LATEST_VERSION}): it was migrated by a newer conveyor; "
        "upgrade conveyor to open it"
    )
