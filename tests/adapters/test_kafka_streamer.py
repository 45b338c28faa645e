"""The Kafka event streamer on the librdkafka mock cluster: the conformance suite with
three partitions, names, options, sharding by partition."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _kafka_support import KafkaCluster, kafka

from conveyor.abc import EventStreamer
from conveyor.adapters.kafka import KafkaEventStreamer
from conveyor.adaptertest import EventStreamerSuite, ReportsPendingSuite, TailsTopicsSuite

__all__ = ["kafka"]

pytestmark = pytest.mark.kafka


@pytest.fixture
async def kafka_streamer(kafka: KafkaCluster) -> AsyncIterator[KafkaEventStreamer]:
    streamer = KafkaEventStreamer(kafka.url, admin=kafka.admin(), partitions=3, create_topics=True)
    try:
        yield streamer
    finally:
        await streamer.close()


class TestKafkaEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self, kafka_streamer: KafkaEventStreamer) -> EventStreamer:
        return kafka_streamer


class TestKafkaTails(TailsTopicsSuite):
    @pytest.fixture
    async def streamer(self, kafka_streamer: KafkaEventStreamer) -> EventStreamer:
        return kafka_streamer


class TestKafkaPending(ReportsPendingSuite):
    @pytest.fixture
    async def streamer(self, kafka_streamer: KafkaEventStreamer) -> EventStreamer:
        return kafka_streamer
