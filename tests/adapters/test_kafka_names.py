"""Kafka topic names and URL options: an injective escaping of conveyor's topic names,
never a truncation, and options checked when the URL is read. No cluster needed."""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from _services import unavailable

if find_spec("confluent_kafka") is None:
    unavailable(
        "Kafka", "confluent-kafka is not installed (pip install 'conveyor[kafka]')", module=True
    )

from conveyor import AdapterError
from conveyor.adapters.kafka import KafkaOptions, escape, unescape
from conveyor.adapters.kafka._options import split_url
from conveyor.adapters.kafka._streamer import shard_partitions

pytestmark = pytest.mark.kafka

ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("sync user", "sync_20user"),
        ("a.b", "a_2eb"),
        ("a_b", "a__b"),
        ("*", "_2a"),
        ("order-1", "order-1"),
        ("é", "_c3_a9"),
    ],
)
def test_a_name_escapes_to_a_valid_kafka_topic(name: str, topic: str) -> None:
    assert escape(name) == topic
    assert set(topic) <= ALLOWED
    assert unescape(topic) == name


def test_names_kafka_would_confuse_stay_apart() -> None:
    # Kafka treats "." and "_" alike in metric names; "a_2eb" is what "a.b" escapes to
    names = ["a.b", "a_b", "a__b", "a_2eb", "a b", "ab", "a-b", "A.b"]
    topics = [escape(n) for n in names]
    assert len(set(topics)) == len(names)
    normalised = {t.replace(".", "_") for t in topics}
    assert len(normalised) == len(names), "two topics collide in Kafka's metric names"


def test_a_prefix_goes_before_the_escaped_name() -> None:
    assert escape("a.b", "app-") == "app-a_2eb"
    assert unescape("app-a_2eb", "app-") == "a.b"


def test_a_name_too_long_is_refused_not_cut() -> None:
    fits = "x" * 249
    assert escape(fits) == fits
    with pytest.raises(AdapterError, match="249"):
        escape("x" * 250)
    with pytest.raises(AdapterError, match="249"):
        escape("." * 84)  # 84 characters, 252 once escaped
    with pytest.raises(AdapterError, match="249"):
        escape("x" * 240, "prefix-of-ten-")


def test_an_empty_name_and_a_topic_that_is_no_escape_are_refused() -> None:
    with pytest.raises(AdapterError):
        escape("")
    with pytest.raises(AdapterError):
        unescape("a_zz")


def test_url_options_are_read_and_checked() -> None:
    servers, options = split_url(
        "kafka://k1:9092,k2:9093?partitions=6&replication=3&create_topics=true&prefix=app-", {}
    )
    assert servers == "k1:9092,k2:9093"
    assert options == KafkaOptions(partitions=6, replication=3, create_topics=True, prefix="app-")
    # keyword arguments win over the URL
    assert split_url("kafka://k:9092?partitions=6", {"partitions": 2})[1].partitions == 2


@pytest.mark.parametrize(
    "url",
    [
        "kafka://k:9092?partitions=0",
        "kafka://k:9092?replication=x",
        "kafka://k:9092?prefix=a.b",
        "kafka://k:9092?fetch_wait=-1",
        "kafka://k:9092?nonsense=1",
        "kafka://user:secret@k:9092",
        "kafka://",
        "redis://k:9092",
    ],
)
def test_bad_urls_are_clear_adapter_errors_without_secrets(url: str) -> None:
    with pytest.raises(AdapterError) as caught:
        split_url(url, {})
    assert "secret" not in str(caught.value)


def test_an_unknown_keyword_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="nonsense"):
        split_url("kafka://k:9092", {"nonsense": 1})


@pytest.mark.parametrize(
    ("name", "partitions", "expected"),
    [
        ("wf-1-consumer-1-of-3", 3, [0]),
        ("wf-1-consumer-3-of-3", 3, [2]),
        ("wf-1-consumer-2-of-2", 6, [1, 3, 5]),
        ("wf-1-consumer-1-of-2", 3, [0, 1, 2]),  # 2 does not divide 3: every partition
        ("wf-1-consumer-1-of-4", 3, [0, 1, 2]),  # more shards than partitions
        ("wf-1-consumer-1-of-1", 3, [0, 1, 2]),
        ("wf-run-state-change", 3, [0, 1, 2]),
    ],
)
def test_a_shard_reads_its_partitions_or_every_one(
    name: str, partitions: int, expected: list[int]
) -> None:
    assert shard_partitions(name, partitions) == expected
