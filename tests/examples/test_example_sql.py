"""examples/sql.py on each SQL database: it migrates the schema, runs the invoices through,
and a second run on the same tables migrates nothing and starts new runs."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sql
from _mysql_support import mysql_url
from _pg_support import pg_url
from sql import INVOICES, Invoice

from conveyor import RunState

__all__ = ["mysql_url", "pg_url"]

EXAMPLE = Path(sql.__file__)


async def _runs_twice(url: str) -> None:
    first = await sql.main(url)
    second = await sql.main(url)
    for done in (first, second):
        assert sorted(done) == sorted(INVOICES)
        for fid, run in done.items():
            assert (run.status, run.run_state, run.version) == (
                Invoice.PAID,
                RunState.COMPLETED,
                3,
            )
            assert run.object.amount == INVOICES[fid]
    assert {r.run_id for r in first.values()}.isdisjoint(r.run_id for r in second.values())


def _with_prefix(url: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}table_prefix=ex{uuid.uuid4().hex[:8]}_"


@pytest.mark.postgres
async def test_on_postgresql(pg_url: str) -> None:
    await _runs_twice(_with_prefix(pg_url))


@pytest.mark.mysql
async def test_on_mariadb(mysql_url: str) -> None:
    await _runs_twice(_with_prefix(mysql_url))


async def test_on_sqlite(tmp_path: Path) -> None:
    await _runs_twice(f"sqlite:///{tmp_path / 'invoices.db'}")


@pytest.mark.processes
@pytest.mark.postgres
def test_the_command_takes_the_url(pg_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), _with_prefix(pg_url)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "schema version 0 -> " in proc.stdout
    assert proc.stdout.count(": PAID Completed v3") == len(INVOICES)
