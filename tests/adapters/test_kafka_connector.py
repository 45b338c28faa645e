"""The Kafka connector on the librdkafka mock cluster: the conformance suite over a topic
of three partitions, and 1,000 outside messages over three shards."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import pytest
from _kafka_support import KafkaCluster, kafka
from confluent_kafka import Producer

from conveyor import Builder, Run, Workflow, WorkflowInProgress
from conveyor.abc import ConnectorConstructor, ConnectorEvent
from conveyor.adapters.kafka import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    KafkaConnector,
    TopicSpec,
)
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.adaptertest import ConnectorMaker, ConnectorReportsPendingSuite, ConnectorSuite
from conveyor.testing import run_until_idle

__all__ = ["kafka"]

pytestmark = pytest.mark.kafka


async def seed_topic(kafka: KafkaCluster, events: Sequence[ConnectorEvent]) -> str:
    """A new topic of three partitions holding ``events`` as an outside producer writes
    them (key = foreign ID, ``event-id``/``event-type`` headers), in order."""
    topic = f"outside-{uuid.uuid4().hex[:12]}"
    admin = kafka.admin()
    await admin.create_topics([TopicSpec(topic, 3, 1)])
    await admin.close()

    def produce() -> None:
        producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
        for e in events:
            headers: list[tuple[str, str | bytes | None]] = [(EVENT_ID_HEADER, e.id.encode())]
            if e.type:
                headers.append((EVENT_TYPE_HEADER, e.type.encode()))
            headers.extend((k, v.encode()) for k, v in e.headers.items())
            producer.produce(topic, b"", e.foreign_id.encode(), headers=headers)
        assert producer.flush(10) == 0, "seed messages not delivered"

    await asyncio.to_thread(produce)
    return topic


class _KafkaConnectorMaker:
    """The seeded-connector fixture both connector suites run with."""

    @pytest.fixture
    async def make_connector(self, kafka: KafkaCluster) -> AsyncIterator[ConnectorMaker]:
        made: list[KafkaConnector] = []

        async def make(events: Sequence[ConnectorEvent]) -> ConnectorConstructor:
            connector = KafkaConnector(kafka.url, await seed_topic(kafka, events))
            made.append(connector)
            return connector

        yield make
        for connector in made:
            await connector.close()


class TestKafkaConnector(_KafkaConnectorMaker, ConnectorSuite):
    pass


class TestKafkaConnectorReportsPending(_KafkaConnectorMaker, ConnectorReportsPendingSuite):
    pass


class Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    DONE = 2


async def test_a_thousand_outside_messages_over_three_shards_start_one_run_each(
    kafka: KafkaCluster,
) -> None:
    # Given 1,000 messages on an outside topic of three partitions
    seed = [ConnectorEvent(id=f"order-{i}", foreign_id=f"customer-{i}") for i in range(1000)]
    connector = KafkaConnector(kafka.url, await seed_topic(kafka, seed))
    calls: Counter[str] = Counter()
    all_seen = asyncio.Event()

    async def start(wf: Workflow[dict[str, str], Status], event: ConnectorEvent) -> None:
        calls[event.id] += 1
        if len(calls) == len(seed):
            all_seen.set()
        try:
            await wf.trigger(event.foreign_id, initial={})
        except WorkflowInProgress:
            pass

    async def finish(run: Run[dict[str, str], Status]) -> Status:
        return Status.DONE

    b = Builder(f"kafka-connector-{uuid.uuid4().hex[:8]}", dict, Status)
    b.add_step(Status.STARTED, finish, Status.DONE)
    b.add_connector("orders", connector, start).with_options(parallel_count=3)
    store = MemoryRecordStore()
    workflow = b.build(MemoryEventStreamer(), store, MemoryRoleScheduler())

    # When the workflow runs its three connector shards until every run is done
    try:
        async with workflow:
            await asyncio.wait_for(all_seen.wait(), 60)
            await run_until_idle(workflow, timeout=60)
    finally:
        await connector.close()

    # Then each message was handled once, and each started exactly one run
    assert calls == Counter({e.id: 1 for e in seed})
    for e in seed:
        assert len(await workflow.list_runs(e.foreign_id)) == 1
