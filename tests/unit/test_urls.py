"""Backend URLs lose their secrets before they reach a log line or an error."""

from __future__ import annotations

import pytest

from conveyor._urls import redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/orders", "postgresql://app:***@db:5432/orders"),
        ("postgresql://app:p%40ss@db/orders", "postgresql://app:***@db/orders"),
        ("postgresql://:only@db/x", "postgresql://:***@db/x"),
        ("postgresql://app@db/orders", "postgresql://app@db/orders"),
        ("sqlite:///orders.db", "sqlite:///orders.db"),
        ("postgresql://db/x?user=a&password=hunter2", "postgresql://db/x?user=a&password=***"),
        ("redis://:tok@cache:6379/0?role_ttl=5", "redis://:***@cache:6379/0?role_ttl=5"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_an_unparsable_url_is_not_echoed() -> None:
    assert redact("postgresql://u:pw@[bad") == "<unparsable URL>"
