"""RabbitMQ options and names: from the URL's query string or keywords, checked, escaped
injectively, secrets never shown."""

from __future__ import annotations

import pytest

from conveyor.abc import AdapterError
from conveyor.adapters.rabbitmq import RabbitConnection, RabbitOptions, stream_name
from conveyor.adapters.rabbitmq._names import reference, topic_of
from conveyor.adapters.rabbitmq._options import split_url


def test_options_come_from_the_query_string_and_keywords_win() -> None:
    endpoint, options = split_url(
        "rabbitmq-stream://app:s3cret@rabbit.example:5553/orders?prefix=shop&max_age=60&credit=4",
        {"max_age": 120.0},
    )

    assert (endpoint.host, endpoint.port, endpoint.vhost) == ("rabbit.example", 5553, "orders")
    assert (endpoint.username, endpoint.password) == ("app", "s3cret")
    assert options == RabbitOptions(prefix="shop", max_age=120.0, credit=4)
    assert "s3cret" not in str(endpoint)
    assert "s3cret" not in repr(endpoint)


@pytest.mark.parametrize(
    ("url", "vhost", "port"),
    [
        ("rabbitmq-stream://localhost", "/", 5552),
        ("rabbitmq-stream://localhost/", "/", 5552),
        ("rabbitmq-stream://localhost:5552/%2F", "/", 5552),
        ("rabbitmq-stream://localhost/a%20b", "a b", 5552),
    ],
)
def test_the_path_is_the_virtual_host(url: str, vhost: str, port: int) -> None:
    endpoint, _ = split_url(url, {})

    assert (endpoint.vhost, endpoint.port, endpoint.username) == (vhost, port, "guest")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("prefix=a.b", "option prefix='a.b' may hold only ASCII letters"),
        ("prefix=", "option prefix must not be empty"),
        ("prefix=" + "p" * 33, "at most 32 are allowed"),
        ("max_age=-1", "option max_age=-1 must be >= 0"),
        ("request_timeout=soon", "option request_timeout='soon' is not a number"),
        ("credit=0", "option credit=0 must be >= 1"),
        ("credit=5000", "option credit=5000 must be at most 1000"),
        ("max_buffer=1.5", "option max_buffer='1.5' is not an integer"),
        ("colour=blue", "unknown rabbitmq-stream:// URL option 'colour'"),
    ],
)
def test_a_bad_option_is_refused_with_its_name_and_the_password_hidden(
    query: str, message: str
) -> None:
    with pytest.raises(AdapterError) as raised:
        split_url(f"rabbitmq-stream://app:s3cret@localhost:5552/?{query}", {})

    assert message in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_only_stream_urls_are_taken() -> None:
    with pytest.raises(AdapterError, match="not a RabbitMQ stream URL"):
        split_url("amqp://app:s3cret@localhost:5672/", {})
    with pytest.raises(TypeError, match="unknown rabbitmq-stream:// options: colour"):
        split_url("rabbitmq-stream://localhost", {"colour": "blue"})


async def test_a_node_that_does_not_answer_is_unavailable_without_the_password() -> None:
    connection = RabbitConnection("rabbitmq-stream://app:s3cret@127.0.0.1:1/?connect_timeout=1")

    with pytest.raises(AdapterError) as raised:
        await connection.client()

    assert "unavailable" in str(raised.value)
    assert "rabbitmq_stream" in str(raised.value), "the message names the plugin to enable"
    assert "s3cret" not in str(raised.value)
    await connection.close()


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("topic", "stream"),
    [
        ("sync user 2-1", "p.sync%20user%202-1"),
        ("a.b", "p.a.b"),
        ("a%2Eb", "p.a%252Eb"),
        ("", "p."),
        ("☃/*>", "p.%E2%98%83%2F%2A%3E"),
    ],
)
def test_topics_are_escaped_injectively(topic: str, stream: str) -> None:
    assert stream_name("p", topic) == stream
    assert topic_of("p", stream) == topic


def test_different_topics_and_prefixes_never_share_a_stream() -> None:
    topics = ["a b", "a%20b", "a.b", "a_b", "a-b", "A b", "a  b"]

    streams = {stream_name("p", t) for t in topics}

    assert len(streams) == len(topics)
    # a prefix holds no "." (nor "~", which marks the cursor streams: "p~.<topic>")
    assert stream_name("ab", "c") != stream_name("a", "bc")
    assert stream_name("p~", "t") not in {stream_name("p", t) for t in ("~.t", "t", "~t")}
    assert topic_of("q", stream_name("p", "t")) is None


def test_a_topic_too_long_for_rabbitmq_is_refused_clearly() -> None:
    assert len(stream_name("p", "t" * 253)) == 255

    with pytest.raises(AdapterError, match=r"too long for RabbitMQ.*at most 255"):
        stream_name("p", "t" * 254)
    with pytest.raises(AdapterError, match="too long"):
        stream_name("p", "☃" * 90)  # 9 bytes escaped each


def test_receiver_names_are_references_up_to_255_bytes() -> None:
    assert reference("sync user 2-consumer-1-of-5") == "sync user 2-consumer-1-of-5"
    assert reference("é" * 127) == "é" * 127

    with pytest.raises(AdapterError, match="at most 255 bytes"):
        reference("é" * 128)
    with pytest.raises(AdapterError, match="must not be empty"):
        reference("")
