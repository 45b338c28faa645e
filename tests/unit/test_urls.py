"""Backend URLs lose their secrets before they reach a log line or an error."""

from __future__ import annotations

import pytest

from conveyor._urls import redact, scrub


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
        # The "@host" forgotten: the password parses as the port.
        ("postgresql://app:hunter2/orders", "postgresql://app:***/orders"),
        ("postgresql://h1:5432,h2:5433/orders", "postgresql://h1:5432,h2:5433/orders"),
        ("postgresql://[::1]:5432/orders", "postgresql://[::1]:5432/orders"),
        ("postgresql://[::1]/orders", "postgresql://[::1]/orders"),
    ],
)
def test_passwords_are_masked(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_an_unparsable_url_is_not_echoed() -> None:
    assert redact("postgresql://u:pw@[bad") == "<unparsable URL>"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:hunter2@db/orders",
        "postgresql://app:hunter%32@db/orders",
        "postgresql://db/orders?password=hunter2",
        "postgresql://app:hunter2/orders",
    ],
)
def test_scrub_removes_every_form_of_the_secret_from_a_message(url: str) -> None:
    message = f"failed to open {url}: invalid literal for int() with base 10: 'hunter2'"
    scrubbed = scrub(message, url)
    assert "hunter2" not in scrubbed
    assert "***" in scrubbed


def test_scrub_leaves_a_message_without_secrets_alone() -> None:
    url = "postgresql://app:hunter2@db/orders"
    assert scrub('database "orders" does not exist', url) == 'database "orders" does not exist'
    assert scrub("anything", "sqlite:///orders.db") == "anything"
