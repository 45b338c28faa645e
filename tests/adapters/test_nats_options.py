"""NATS options: from the URL's query string or keywords, checked, secrets never shown."""

from __future__ import annotations

import pytest

from conveyor.abc import AdapterError
from conveyor.adapters.nats import NatsConnection, NatsOptions
from conveyor.adapters.nats._options import split_url


def test_options_come_from_the_query_string_and_keywords_win() -> None:
    server, options = split_url(
        "nats://app:s3cret@nats.example:4223?prefix=orders&max_age=60&fetch_batch=10",
        {"max_age": 120.0},
    )

    assert server == "nats://app:s3cret@nats.example:4223"
    assert options == NatsOptions(prefix="orders", max_age=120.0, fetch_batch=10)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("prefix=a.b", "option prefix='a.b' may hold only ASCII letters"),
        ("prefix=", "option prefix must not be empty"),
        ("prefix=" + "p" * 33, "at most 32 are allowed"),
        ("max_age=-1", "option max_age=-1 must be >= 0"),
        ("ack_wait=soon", "option ack_wait='soon' is not a number"),
        ("fetch_batch=0", "option fetch_batch=0 must be >= 1"),
        ("storage=disk", "option storage='disk' must be 'file' or 'memory'"),
        ("role_ttl=3&role_renew=2", "option role_renew=2 must be at most role_ttl / 3"),
        ("colour=blue", "unknown nats:// URL option 'colour'"),
    ],
)
def test_a_bad_option_is_refused_with_its_name_and_the_password_hidden(
    query: str, message: str
) -> None:
    with pytest.raises(AdapterError) as raised:
        split_url(f"nats://app:s3cret@localhost:4222?{query}", {})

    assert message in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_only_nats_urls_are_taken() -> None:
    with pytest.raises(AdapterError, match="not a NATS URL"):
        split_url("redis://app:s3cret@localhost:6379", {})
    with pytest.raises(TypeError, match="unknown nats:// options: colour"):
        split_url("nats://localhost", {"colour": "blue"})


async def test_a_server_that_does_not_answer_is_unavailable_without_the_password() -> None:
    # Given a URL of a port nothing listens on
    connection = NatsConnection("nats://app:s3cret@127.0.0.1:1?connect_timeout=1")

    # When it connects, then it says so, with the password masked
    with pytest.raises(AdapterError) as raised:
        await connection.client()
    assert "unavailable" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    assert "s3cret" not in repr(connection)
    await connection.close()
