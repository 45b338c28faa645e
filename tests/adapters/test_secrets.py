"""A URL's password never reaches an error message, a ``repr`` or the command line's output
(no server needed here: every failure happens before or without one; the PostgreSQL
connection failures are in ``test_postgres_cli_secrets``)."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

import conveyor
from conveyor import AdapterError, Backend
from conveyor.adapters.memory import MemoryRecordStore
from conveyor.adapters.postgres import PostgresBackend
from conveyor.adapters.postgres._errors import translate_connecting
from conveyor.cli import cli

SECRET = "hunter2"


async def _error_of(url: str) -> str:
    with pytest.raises(AdapterError) as raised:
        async with conveyor.connect(url):
            pass
    return str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            f"nosuch://app:{SECRET}@db/orders", "unknown backend scheme", id="unknown-scheme"
        ),
        pytest.param(f"postgresql://app:{SECRET}@[db/orders", "<unparsable URL>", id="unparsable"),
        pytest.param(
            f"postgresql://app:{SECRET}@db/orders?role_ttl=abc",
            "option role_ttl='abc' is not a number",
            id="postgres-bad-option",
        ),
        pytest.param(
            f"postgresql://app:{SECRET}@db/orders?table_prefix={'p' * 60}",
            "at most 46 are allowed",
            id="postgres-long-prefix",
        ),
        pytest.param(
            f"sqlite://app:{SECRET}@db/orders.db",
            "not a local SQLite URL: sqlite://app:***@db/orders.db",
            id="sqlite-with-a-host",
        ),
        pytest.param(
            f"sqlite:///orders.db?password={SECRET}",
            "unknown sqlite:// option 'password' in sqlite:///orders.db?password=***",
            id="sqlite-unknown-option",
        ),
        pytest.param(
            f"sqlite:///orders.db?lease_ttl=abc&password={SECRET}",
            "option lease_ttl='abc' is not a number",
            id="sqlite-bad-option",
        ),
    ],
)
async def test_bad_url_errors_mask_the_password(url: str, shown: str) -> None:
    message = await _error_of(url)
    assert shown in message
    assert SECRET not in message


async def test_postgres_url_errors_mask_the_password() -> None:
    from conveyor.adapters.postgres._options import split_url

    with pytest.raises(AdapterError) as raised:
        split_url(f"mysql://app:{SECRET}@db/orders", {})
    assert str(raised.value) == "not a PostgreSQL URL: mysql://app:***@db/orders"


async def test_a_malformed_postgres_url_quoted_by_the_driver_is_scrubbed() -> None:
    # The "@host" forgotten: the password parses as a port, which asyncpg quotes.
    with pytest.raises(AdapterError) as raised:
        async with conveyor.connect(f"postgresql://app:{SECRET}/orders?connect_timeout=2"):
            pass
    assert SECRET not in str(raised.value)
    assert SECRET not in "".join(traceback.format_exception(raised.value))  # nor any cause


def test_translate_connecting_keeps_a_clean_cause_and_drops_a_quoting_one() -> None:
    dsn = f"postgresql://app:{SECRET}@db/orders"
    clean = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    error, cause = translate_connecting(clean, dsn)
    assert isinstance(error, conveyor.AdapterUnavailable)
    assert cause is clean
    quoting = ValueError(f"could not parse {dsn}")
    error, cause = translate_connecting(quoting, dsn)
    assert SECRET not in str(error)
    assert "postgresql://app:***@db/orders" in str(error)
    assert cause is None


def test_backend_reprs_mask_the_password() -> None:
    store = MemoryRecordStore()
    plain = Backend(f"postgresql://app:{SECRET}@db/orders", store, store, store, store)  # type: ignore[arg-type]
    postgres = PostgresBackend(
        f"postgresql://app:{SECRET}@db/orders",
        store,  # type: ignore[arg-type]
        store,
        store,  # type: ignore[arg-type]
        store,  # type: ignore[arg-type]
        database=None,  # type: ignore[arg-type]
        pruner=None,  # type: ignore[arg-type]
    )
    for backend in (plain, postgres):
        shown = repr(backend)
        assert SECRET not in shown
        assert "url='postgresql://app:***@db/orders'" in shown
        assert backend.url.endswith(f"{SECRET}@db/orders")  # the URL itself is kept
    assert repr(postgres).startswith("PostgresBackend(url=")
    assert "database=None" in repr(postgres)


async def test_sqlite_and_memory_backend_reprs_show_their_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    async with conveyor.connect(url) as backend:
        assert repr(backend).startswith(f"Backend(url={url!r}, streamer=")
    async with conveyor.connect("memory://") as backend:
        assert repr(backend).startswith("Backend(url='memory://', streamer=")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        pytest.param(
            ["runs", "list", "--store", f"nosuch://app:{SECRET}@db/orders"],
            "unknown backend scheme",
            id="list-unknown-scheme",
        ),
        pytest.param(
            ["runs", "show", "--store", f"sqlite://app:{SECRET}@db/orders.db", "run-1"],
            "no such database file: sqlite://app:***@db/orders.db",
            id="show-sqlite-with-a-host",
        ),
        pytest.param(
            ["migrate", "--store", f"sqlite://app:{SECRET}@db/orders.db"],
            "not a local SQLite URL: sqlite://app:***@db/orders.db",
            id="migrate-sqlite-with-a-host",
        ),
        pytest.param(
            ["migrate", "--store", f"postgresql://app:{SECRET}@db/x?pool_max=0"],
            "option pool_max=0 must be >= 1",
            id="migrate-postgres-bad-option",
        ),
        pytest.param(
            ["runs", "pause", "--store", f"postgresql://app:{SECRET}/orders", "run-1"],
            "PostgreSQL",
            id="pause-postgres-malformed",
        ),
    ],
)
def test_the_command_line_masks_the_password(args: list[str], shown: str) -> None:
    result = CliRunner().invoke(cli, args)
    printed = result.output.replace("\n", "")  # rich wraps long lines
    assert result.exit_code == 1, result.output
    assert shown in printed
    assert SECRET not in printed
