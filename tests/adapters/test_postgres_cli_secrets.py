"""The CLI and conveyor's errors never show a PostgreSQL password (the server here trusts
local users, so a URL with any password connects)."""

from __future__ import annotations

import asyncio
import socket
import traceback
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
from _pg_support import pg_url
from click.testing import CliRunner

import conveyor
from conveyor import AdapterError
from conveyor.cli import cli

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, "schema=cli_secrets", ""))


def test_migrate_masks_the_password(pg_url: str) -> None:
    url = with_password(pg_url, "hunter2")
    for said in ("created schema version", "schema is up to date"):  # the first, then again
        result = CliRunner().invoke(cli, ["migrate", "--store", url])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(said), result.output
        assert " in postgresql://postgres:***@" in result.output
        assert "hunter2" not in result.output


def _port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:hunter2@{parts.hostname}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "connect_timeout=5", ""))


def _database(url: str, name: str) -> str:
    parts = urlsplit(with_password(url, "hunter2"))
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("make_url", "said"),
    [
        pytest.param(
            lambda url: _port(url, _unused_port()), "PostgreSQL unavailable", id="unreachable"
        ),
        pytest.param(
            lambda url: _database(url, "no_such_database_here"),
            "no_such_database_here",
            id="wrong-database",
        ),
    ],
)
def test_a_failed_connection_never_shows_the_password(
    pg_url: str, make_url: Callable[[str], str], said: str
) -> None:
    url = make_url(pg_url)
    assert "hunter2" in url

    async def open_it() -> None:
        async with conveyor.connect(url):
            pass

    with pytest.raises(AdapterError) as raised:
        asyncio.run(open_it())
    assert said in str(raised.value)
    assert "hunter2" not in "".join(traceback.format_exception(raised.value))
    for command in (["migrate", "--store", url], ["runs", "list", "--store", url]):
        result = CliRunner().invoke(cli, command)
        printed = result.output.replace("\n", "")
        assert result.exit_code == 1, printed
        assert said in printed
        assert "hunter2" not in printed
