"""Every URL (and keyword) option of the SQLite and PostgreSQL backends is checked, type and
range, with one message format; no case here needs a server (the checks run first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import AdapterError
from conveyor.adapters.postgres import PostgresOptions
from conveyor.adapters.postgres._options import split_url

_PG = "postgresql://app:hunter2@127.0.0.1:1/orders"


async def _refused(url: str, **options: Any) -> str:
    with pytest.raises(AdapterError) as raised:
        async with conveyor.connect(url, **options):
            pass  # pragma: no cover
    message = str(raised.value)
    assert "hunter2" not in message
    return message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("lease_ttl=abc", "option lease_ttl='abc' is not a number"),
        ("lease_ttl=nan", "option lease_ttl='nan' is not a number"),
        ("lease_ttl=inf", "option lease_ttl='inf' is not a finite number"),
        ("lease_ttl=", "option lease_ttl='' is not a number"),
        ("lease_ttl=0", "option lease_ttl=0 must be > 0"),
        ("lease_ttl=-1", "option lease_ttl=-1 must be > 0"),
        ("busy_timeout=-5", "option busy_timeout=-5 must be >= 0"),
        ("lock_timeout=-0.5", "option lock_timeout=-0.5 must be >= 0"),
        ("max_poll=0", "option max_poll=0 must be > 0"),
        ("lease_poll=0", "option lease_poll=0 must be > 0"),
        ("grace=-1", "option grace=-1 must be >= 0"),
        ("retention=-60", "option retention=-60 must be >= 0"),
        ("prune_interval=-1", "option prune_interval=-1 must be >= 0"),
        ("prune_interval=1e999", "option prune_interval='1e999' is not a finite number"),
        (
            "lease_ttl=1&lease_poll=0.5",
            "option lease_poll=0.5 must be less than lease_ttl / 3 (lease_ttl=1)",
        ),
        ("lease_ttl=0.3", "option lease_poll=0.2 must be less than lease_ttl / 3 (lease_ttl=0.3)"),
        ("create_schema=maybe", "option create_schema='maybe' is not a boolean (true or false)"),
        ("inline=2", "option inline='2' is not a boolean (true or false)"),
    ],
)
async def test_sqlite_url_options_are_checked(tmp_path: Path, query: str, message: str) -> None:
    path = tmp_path / "x.db"
    assert await _refused(f"sqlite:///{path}?{query}") == message
    assert not path.exists()  # refused before the file was created


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lease_ttl": "2"}, "option lease_ttl='2' is not a number"),
        ({"lease_ttl": True}, "option lease_ttl=True is not a number"),
        ({"busy_timeout": float("nan")}, "option busy_timeout=nan is not a number"),
        ({"busy_timeout": -5}, "option busy_timeout=-5 must be >= 0"),
        ({"inline": "yes"}, "option inline='yes' is not a boolean (true or false)"),
    ],
)
async def test_sqlite_keyword_options_are_checked(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    assert await _refused(f"sqlite:///{tmp_path / 'x.db'}", **options) == message


async def test_sqlite_options_in_range_open(tmp_path: Path) -> None:
    query = "busy_timeout=0&lock_timeout=0&retention=0&prune_interval=0&grace=0&create_schema=yes"
    async with conveyor.connect(f"sqlite:///{tmp_path / 'x.db'}?{query}&lease_ttl=1.5") as b:
        assert b.url.endswith("lease_ttl=1.5")
    await conveyor.migrate(f"sqlite:///{tmp_path / 'x.db'}?busy_timeout=0.5")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("role_ttl=abc", "option role_ttl='abc' is not a number"),
        ("role_ttl=nan", "option role_ttl='nan' is not a number"),
        ("role_ttl=-inf", "option role_ttl='-inf' is not a finite number"),
        ("role_ttl=0", "option role_ttl=0 must be > 0"),
        ("role_renew=0", "option role_renew=0 must be > 0"),
        ("role_renew=5", "option role_renew=5 must be at most role_ttl / 3 (role_ttl=10)"),
        ("role_grace=-1", "option role_grace=-1 must be >= 0"),
        ("connect_timeout=0", "option connect_timeout=0 must be > 0"),
        ("poll_interval=-1", "option poll_interval=-1 must be > 0"),
        ("listen_check_interval=0", "option listen_check_interval=0 must be > 0"),
        ("ack_flush_interval=-0.01", "option ack_flush_interval=-0.01 must be >= 0"),
        ("prune_interval=-5", "option prune_interval=-5 must be >= 0"),
        ("event_retention=-1", "option event_retention=-1 must be >= 0"),
        ("unread_event_retention=nan", "option unread_event_retention='nan' is not a number"),
        ("unread_event_retention=-1", "option unread_event_retention=-1 must be >= 0"),
        ("cursor_retention=0", "option cursor_retention=0 must be > 0"),
        ("timeout_retention=-1", "option timeout_retention=-1 must be >= 0"),
        ("pool_max=0", "option pool_max=0 must be >= 1"),
        ("pool_max=2.5", "option pool_max='2.5' is not an integer"),
        ("pool_min=-1", "option pool_min=-1 must be >= 0"),
        ("pool_min=many", "option pool_min='many' is not an integer"),
        ("migrate=maybe", "option migrate='maybe' is not a boolean (true or false)"),
        ("schema=", "option schema must not be empty"),
        (
            f"schema={'s' * 64}",
            f"option schema='{'s' * 64}' is 64 bytes long in UTF-8; at most 63 are allowed",
        ),
        (
            f"table_prefix={'p' * 60}",
            f"option table_prefix='{'p' * 60}' is 60 bytes long in UTF-8; at most 46 are allowed",
        ),
    ],
)
async def test_postgres_url_options_are_checked(query: str, message: str) -> None:
    assert await _refused(f"{_PG}?{query}") == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"role_ttl": "3"}, "option role_ttl='3' is not a number"),
        ({"role_ttl": float("inf")}, "option role_ttl=inf is not a finite number"),
        ({"pool_max": 2.0}, "option pool_max=2.0 is not an integer"),
        ({"pool_max": True}, "option pool_max=True is not an integer"),
        ({"migrate": 1}, "option migrate=1 is not a boolean (true or false)"),
        ({"schema": 7}, "option schema=7 is not a string"),
        ({"table_prefix": "a\x00b"}, "option table_prefix='a\\x00b' must not hold a NUL"),
    ],
)
async def test_postgres_keyword_options_are_checked(options: dict[str, Any], message: str) -> None:
    assert await _refused(_PG, **options) == message
    with pytest.raises(AdapterError, match=r"^option "):
        PostgresOptions(**options)


def test_postgres_options_in_range_are_taken() -> None:
    _, settings = split_url(
        f"{_PG}?role_ttl=3&role_renew=1&prune_interval=0&event_retention=0"
        "&unread_event_retention=none&pool_min=0&migrate=on&sslmode=disable",
        {"pool_max": 4},
    )
    assert settings.role_ttl == 3.0
    assert settings.prune_interval == 0.0
    assert settings.unread_event_retention is None
    assert settings.unread_retention == 0.0
    assert (settings.pool_min, settings.pool_max, settings.migrate) == (0, 4, True)
    assert split_url(f"{_PG}?unread_event_retention=30", {})[1].unread_retention == 30.0
