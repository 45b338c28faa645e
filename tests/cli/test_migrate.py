"""`conveyor migrate` says what it did: created the schema (and which tables), upgraded it
(from which version, by which steps), or found it up to date; on SQLite and memory://.
The PostgreSQL cases are in ``test_migrate_postgres.py``."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from click.testing import CliRunner

import conveyor
from conveyor.abc import AppliedMigration, MigrationReport
from conveyor.adapters.sqlite import SCHEMA_VERSION
from conveyor.adapters.sqlite._schema import statements
from conveyor.cli import cli


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    finally:
        conn.close()
    return {str(row[0]) for row in rows}


def _file_at_version(path: Path, version: int) -> None:
    """A file as a conveyor whose schema version was ``version`` left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for step in range(1, version + 1):
            for statement in statements(step):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    finally:
        conn.close()


def test_migrate_of_a_new_file_says_it_created_the_schema_and_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    url = f"sqlite:///{path}"

    code, out = invoke("migrate", "--store", url)

    assert code == 0, out
    head = f"created schema version {SCHEMA_VERSION} in {url} (tables "
    assert out.startswith(head), out
    assert out.endswith(")\n"), out
    listed = out[len(head) : -len(")\n")].split(", ")
    assert listed[:3] == ["records", "outbox", "events"]  # in creation order
    assert sorted(listed) == sorted(_tables(path))


def test_migrate_of_a_migrated_file_says_it_is_up_to_date(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    assert invoke("migrate", "--store", url)[0] == 0

    code, out = invoke("migrate", "--store", url)

    assert (code, out) == (0, f"schema is up to date (version {SCHEMA_VERSION}) in {url}\n")


def test_migrate_of_an_older_file_says_what_it_upgraded(tmp_path: Path) -> None:
    # Given a file at schema version 2 (failures and history, no list indexes,
    # definitions or settings yet)
    path = tmp_path / "v2.db"
    _file_at_version(path, 2)
    url = f"sqlite:///{path}"

    # When it is migrated
    code, out = invoke("migrate", "--store", url)

    # Then the output names both versions, each step applied and the table it created
    assert (code, out) == (
        0,
        f"upgraded schema from version 2 to 5 in {url}: 3 list_runs, 4 definitions, "
        "5 settings (new tables definitions, settings)\n",
    )


def test_migrate_of_a_memory_store_says_there_is_no_schema() -> None:
    assert invoke("migrate", "--store", "memory://") == (
        0,
        "no schema to create or upgrade in memory://\n",
    )


def test_migrate_returns_what_it_did(tmp_path: Path) -> None:
    # Given a file at version 3
    path = tmp_path / "v3.db"
    _file_at_version(path, 3)
    url = f"sqlite:///{path}"
    new = f"sqlite:///{tmp_path / 'new.db'}"

    # When it, a new file and a memory store are migrated (twice each)
    upgraded, again = asyncio.run(conveyor.migrate(url)), asyncio.run(conveyor.migrate(url))
    created = asyncio.run(conveyor.migrate(new))
    memory = asyncio.run(conveyor.migrate("memory://"))

    # Then each report says what that call did
    assert upgraded == MigrationReport(
        created=False,
        from_version=3,
        to_version=5,
        applied=(AppliedMigration(4, "definitions"), AppliedMigration(5, "settings")),
        tables=("definitions", "settings"),
    )
    assert upgraded.changed
    assert again == MigrationReport(created=False, from_version=5, to_version=5)
    assert not again.changed
    assert created is not None
    assert (created.created, created.from_version, created.to_version) == (True, 0, 5)
    assert [m.version for m in created.applied] == [1, 2, 3, 4, 5]
    assert [m.name for m in created.applied] == [
        "initial",
        "failures_and_history",
        "list_runs",
        "definitions",
        "settings",
    ]
    assert created.schema == ""
    assert memory is None
