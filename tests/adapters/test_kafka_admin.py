"""``KafkaTopicAdmin`` on the answers of a cluster's CreateTopics, without a cluster.

librdkafka's mock cluster has no CreateTopics (``tests/cli/test_migrate_kafka.py`` shows
its refusal), so what a real cluster answers is given here by a stand-in for
confluent-kafka's ``AdminClient``: one future per topic, as ``create_topics`` returns
them. Checked: the request (names, partitions, replication), a topic that exists
(``TOPIC_ALREADY_EXISTS``) is left out of what was created, and any other failure is an
``AdapterError`` naming the topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from importlib.util import find_spec
from typing import Any

import pytest

from _services import unavailable

if find_spec("confluent_kafka") is None:
    unavailable(
        "Kafka", "confluent-kafka is not installed (pip install 'conveyor[kafka]')", module=True
    )

from confluent_kafka import KafkaError, KafkaException

from conveyor import AdapterError
from conveyor.adapters.kafka import KafkaTopicAdmin, TopicSpec


class _Answers:
    """Answers ``create_topics`` with a future per topic: done, or failed with the error
    code given for that topic."""

    def __init__(self, errors: dict[str, int]) -> None:
        self.errors = errors
        self.asked: list[tuple[str, int, int]] = []

    def create_topics(self, new: Sequence[Any], request_timeout: float) -> dict[str, Future[None]]:
        futures: dict[str, Future[None]] = {}
        for topic in new:
            self.asked.append((topic.topic, topic.num_partitions, topic.replication_factor))
            future: Future[None] = Future()
            code = self.errors.get(topic.topic)
            if code is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaException(KafkaError(code)))
            futures[topic.topic] = future
        return futures


def _admin(answers: _Answers) -> KafkaTopicAdmin:
    admin = KafkaTopicAdmin("127.0.0.1:9")
    admin._client = answers  # type: ignore[assignment]  # the stand-in cluster
    return admin


async def test_created_topics_are_returned_and_existing_ones_left_out() -> None:
    answers = _Answers({"b": KafkaError.TOPIC_ALREADY_EXISTS})
    admin = _admin(answers)
    try:
        created = await admin.create_topics(
            [TopicSpec("a", 6, 3), TopicSpec("b", 6, 3), TopicSpec("c", 6, 3)]
        )
    finally:
        await admin.close()

    assert list(created) == ["a", "c"]
    assert answers.asked == [("a", 6, 3), ("b", 6, 3), ("c", 6, 3)]


async def test_another_failure_is_an_adapter_error_naming_the_topic() -> None:
    admin = _admin(_Answers({"b": KafkaError.INVALID_REPLICATION_FACTOR}))
    try:
        with pytest.raises(AdapterError, match=r"creating topic 'b'.*INVALID_REPLICATION_FACTOR"):
            await admin.create_topics([TopicSpec("a", 3, 5), TopicSpec("b", 3, 5)])
    finally:
        await admin.close()


async def test_nothing_to_create_asks_nothing() -> None:
    answers = _Answers({})
    admin = _admin(answers)
    try:
        assert list(await admin.create_topics([])) == []
    finally:
        await admin.close()
    assert answers.asked == []
