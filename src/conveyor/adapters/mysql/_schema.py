"""The versioned schema shipped in ``migrations/NNNN_name.sql``, and applying it.

MySQL commits every DDL statement on its own, so a migration is not one transaction: each
statement is written to be applied again harmlessly (``CREATE TABLE IF NOT EXISTS``, with
its indexes inside), a migration is recorded in ``schema_migrations`` once all its
statements ran, and ``GET_LOCK`` on the installation's name keeps several processes that
start with ``migrate=True`` from applying one at the same time. A schema at a newer
version than this code knows is refused (old code must not run on a schema it does not
know), by ``migrate`` and by opening the backend.

Every table is InnoDB, ``utf8mb4`` with the ``utf8mb4_bin`` collation (text compares by
code point, as in the SQLite and memory stores, and ``Ab`` and ``ab`` are different
foreign IDs).
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
from ._options import Tables, split_url

__all__ = ["LATEST_VERSION", "Migration", "apply", "check_schema", "migrate", "migrate_report"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_WAIT = 60


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: ``version`` counts from 1."""

    version: int
    name: str
    sql: str

    def statements(self, tables: Tables) -> list[str]:
        """The migration's statements, placeholders filled (split at ``;`` ending a line)."""
        text = tables.substitute(self.sql)
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
        return [s.strip() for s in re.split(r";\s*$", "\n".join(lines), flags=re.M) if s.strip()]


def migrations() -> list[Migration]:
    """Every migration shipped in the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise AdapterError("conveyor's MySQL migrations are not numbered 1, 2, 3, ...")
    return found


LATEST_VERSION = len(migrations())


def _lock_name(database: str, tables: Tables) -> str:
    return f"conveyor-migrate-{fnv1a64(f'{database}:{tables.prefix}'):016x}"


async def _existing(conn: Connection, tables: Tables) -> list[str]:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
        found = {str(r[0]) for r in await cur.fetchall()}
    return [tables.prefix + t for t in Tables.TABLES if tables.prefix + t in found]


async def apply(conn: Connection, tables: Tables, database: str) -> MigrationReport:
    """Apply pending migrations on ``conn`` (connected to ``database``); returns what it
    did."""
    applied: list[AppliedMigration] = []
    async with conn.cursor() as cur:
        lock = _lock_name(database, tables)
        await cur.execute("SELECT GET_LOCK(%s, %s)", (lock, _LOCK_WAIT))
        (got,) = await cur.fetchone()
        if got != 1:
            raise AdapterError(f"another process is migrating this schema (waited {_LOCK_WAIT}s)")
        try:
            before = await _existing(conn, tables)
            await cur.execute(
                f"CREATE TABLE IF NOT EXISTS {tables.schema_migrations} ("
                "version INT NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL, "
                "applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
            )
            await cur.execute(f"SELECT version FROM {tables.schema_migrations}")
            done = {int(r[0]) for r in await cur.fetchall()}
            if done and max(done) > LATEST_VERSION:
                raise _newer(tables, max(done))
            for migration in migrations():
                if migration.version in done:
                    continue
                for statement in migration.statements(tables):
                    await cur.execute(statement)
                await cur.execute(
                    f"INSERT INTO {tables.schema_migrations} (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                applied.append(AppliedMigration(migration.version, migration.name))
            after = await _existing(conn, tables) if applied else before
        finally:
            await cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
            await cur.fetchall()
    from_version = max(done, default=0)
    return MigrationReport(
        created=not done,
        from_version=from_version,
        to_version=max([from_version, *(m.version for m in applied)]),
        applied=tuple(applied),
        tables=tuple(t for t in after if t not in before),
        schema=database,
    )


async def migrate(url: str, **options: Any) -> list[int]:
    """Create or upgrade conveyor's schema at ``url``; the versions applied. Idempotent
    and safe to run from several processes at once. Raises ``AdapterError``."""
    return [m.version for m in (await migrate_report(url, **options)).applied]


async def migrate_report(url: str, **options: Any) -> MigrationReport:
    """``migrate``, returning what it did (``conveyor migrate --store URL`` prints it)."""
    options.pop("migrate", None)
    args, settings = split_url(url, options)
    db = Database(args, settings)
    conn = await db.connect()
    try:
        return await apply(conn, db.tables, args.database)
    except AdapterError:
        raise
    except Exception as exc:
        raise translate(exc, "migrating the schema", url) from exc
    finally:
        conn.close()


async def check_schema(db: Database) -> None:
    """Raise ``AdapterError`` unless the schema is at the version this code needs."""
    tables = db.tables

    async def version(conn: Connection) -> int | None:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT COUNT(*) FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                (tables.prefix + "schema_migrations",),
            )
            (exists,) = await cur.fetchone()
            if not exists:
                return None
            await cur.execute(f"SELECT MAX(version) FROM {tables.schema_migrations}")
            (value,) = await cur.fetchone()
            return int(value) if value is not None else None

    found = await db.run("checking the schema version", version, retry=True)
    if found is not None and found > LATEST_VERSION:
        raise _newer(tables, found)
    if found is None or found < LATEST_VERSION:
        state = "missing" if found is None else f"at version {found}"
        raise AdapterError(
            f"conveyor's MySQL schema{_of(tables)} is {state}, this version needs "
            f"{LATEST_VERSION}: run `conveyor migrate --store <url>` or open the backend "
            "with migrate=True"
        )


def _of(tables: Tables) -> str:
    return f" (table prefix {tables.prefix!r})" if tables.prefix else ""


def _newer(tables: Tables, found: int) -> AdapterError:
    return AdapterError(
        f"conveyor's MySQL schema{_of(tables)} is at version {found}, newer than this "
        f"conveyor knows ({LATEST_VERSION}): it was migrated by a newer conveyor; upgrade "
        "conveyor to open it"
    )
