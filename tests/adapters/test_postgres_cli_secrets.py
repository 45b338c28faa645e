"""The CLI never prints a PostgreSQL password (the server here trusts local users, so a
URL with any password connects)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
from _pg_support import pg_url
from click.testing import CliRunner

from conveyor.cli import cli

__all__ = ["pg_url"]

pytestmark = pytest.mark.postgres


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, "schema=cli_secrets", ""))


def test_migrate_masks_the_password(pg_url: str) -> None:
    url = with_password(pg_url, "hunter2")
    result = CliRunner().invoke(cli, ["migrate", "--store", url])
    assert result.exit_code == 0, result.output
    printed = result.output.replace("\n", "")  # rich wraps long lines
    assert "schema is up to date: postgresql://postgres:***@" in printed
    assert "hunter2" not in printed
