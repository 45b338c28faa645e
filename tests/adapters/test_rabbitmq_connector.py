"""The RabbitMQ connector: the conformance suite on a stream seeded per case, the mapping
of AMQP 1.0 messages, and 1,000 outside messages read by three shards."""

from __future__ import annotations

import asyncio
import enum
import functools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from _mysql_processes import until
from _rabbitmq_support import delete_streams, new_prefix, rabbitmq_url

from conveyor import Builder, Run, Workflow, WorkflowInProgress
from conveyor.abc import AdapterError, ConnectorConstructor, ConnectorEvent
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.adapters.rabbitmq import (
    RabbitConnection,
    RabbitConnector,
    StreamMessage,
    decode_message,
    encode_message,
    message_event,
)
from conveyor.adapters.rabbitmq import _wire as wire
from conveyor.adaptertest import ConnectorMaker, ConnectorReportsPendingSuite, ConnectorSuite
from conveyor.adaptertest._fixtures import WAIT_TIMEOUT, User, within
from conveyor.testing import require, run_until_idle

__all__ = ["rabbitmq_url"]

pytestmark = pytest.mark.rabbitmq


async def seed(
    url: str, stream: str, events: Sequence[ConnectorEvent], *, per_publish: int = 200
) -> None:
    """A stream ``stream`` holding ``events`` as AMQP 1.0 messages, as an outside producer
    writes them (``message_event`` maps them back), ``per_publish`` a confirmed publish
    (so a chunk at least each); appended if the stream exists."""
    connection = RabbitConnection(url)
    try:
        client = await connection.client()
        await client.request(
            functools.partial(wire.create_frame, stream=stream, arguments={}),
            "creating",
            allow=(wire.Code.STREAM_ALREADY_EXISTS,),
        )
        messages = [
            encode_message(
                e.foreign_id.encode(),
                message_id=e.id,
                subject=e.type or None,
                application_properties=dict(e.headers),
            )
            for e in events
        ]
        for start in range(0, len(messages), per_publish):
            await client.publish(stream, messages[start : start + per_publish])
    finally:
        await connection.close()


@pytest.fixture
async def outside(rabbitmq_url: str) -> AsyncIterator[list[str]]:
    """Names for outside streams, deleted at the end."""
    names: list[str] = []
    try:
        yield names
    finally:
        await delete_streams(rabbitmq_url, names)


class _RabbitConnectorMaker:
    """The seeded-connector fixture both connector suites run with."""

    @pytest.fixture
    async def make_connector(
        self, rabbitmq_url: str, outside: list[str]
    ) -> AsyncIterator[ConnectorMaker]:
        prefix = new_prefix("c")
        made: list[RabbitConnector] = []

        async def make(events: Sequence[ConnectorEvent]) -> ConnectorConstructor:
            stream = f"{prefix}-outside{len(made)}"
            outside.append(stream)
            await seed(rabbitmq_url, stream, events)
            connector = RabbitConnector(rabbitmq_url, stream=stream)
            made.append(connector)
            return connector

        try:
            yield make
        finally:
            for connector in made:
                await connector.close()


class TestRabbitConnector(_RabbitConnectorMaker, ConnectorSuite):
    pass


class TestRabbitConnectorReportsPending(_RabbitConnectorMaker, ConnectorReportsPendingSuite):
    pass


# --------------------------------------------------------------------------- mapping

# What another client (rstream 1.1, Python) writes for
# AMQPMessage(body=b"hello", properties=Properties(message_id="m-1", subject="user.created",
# creation_time=1700000000000), application_properties={"Foreign-Id": "fid ☃", "n": 5,
# "b": True}): the connector reads it without that client.
_RSTREAM_MESSAGE = bytes.fromhex(
    "005373c0270da1036d2d314040a10c757365722e637265617465644040404040830000018bcfe568004040"
    "40005374c12006a10a466f726569676e2d4964a10766696420e29883a1016e5405a101625601005375a005"
    "68656c6c6f"
)


def test_an_amqp_message_of_another_client_maps_to_an_event() -> None:
    stored = datetime(2026, 1, 1, tzinfo=UTC)

    event = message_event(StreamMessage(7, _RSTREAM_MESSAGE, stored))

    assert event == ConnectorEvent(
        id="m-1",
        foreign_id="fid ☃",
        type="user.created",
        headers={"n": "5", "b": "true"},
        created_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
    )


def test_a_message_without_properties_maps_its_offset_and_body() -> None:
    stored = datetime(2026, 1, 1, tzinfo=UTC)

    amqp = message_event(StreamMessage(7, encode_message(b"user-1"), stored))
    raw = message_event(StreamMessage(8, b"not amqp \xff", stored))

    assert (amqp.id, amqp.foreign_id, amqp.type, amqp.created_at) == ("7", "user-1", "", stored)
    assert (raw.id, raw.foreign_id) == ("8", "not amqp \ufffd")


def test_encode_message_round_trips() -> None:
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    data = encode_message(
        b"x" * 300,
        message_id="id " * 100,
        subject="s",
        creation_time=created,
        application_properties={"k": "v" * 300},
    )

    message = decode_message(data)

    assert message.body == b"x" * 300
    assert message.message_id == "id " * 100
    assert (message.subject, message.creation_time) == ("s", created)
    assert dict(message.application_properties) == {"k": "v" * 300}


def test_bytes_that_are_not_a_message_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"AMQP 1\.0"):
        decode_message(b"\x53\x01")


async def test_a_missing_stream_fails_with_a_clear_error(rabbitmq_url: str) -> None:
    connector = RabbitConnector(rabbitmq_url, stream=f"{new_prefix()}-nowhere")
    try:
        with pytest.raises(AdapterError, match="STREAM_DOES_NOT_EXIST"):
            await connector.make("reader")
    finally:
        await connector.close()


async def test_a_consumer_of_an_empty_stream_is_caught_up_once_a_recv_waits_and_not_after(
    rabbitmq_url: str, outside: list[str]
) -> None:
    # Given a consumer of an outside stream that holds nothing yet
    stream = f"{new_prefix('e')}-empty"
    outside.append(stream)
    await seed(rabbitmq_url, stream, [])
    connector = RabbitConnector(rabbitmq_url, stream=stream)
    try:
        consumer = await connector.make("reader")
        assert consumer.pending() == 1, "not known to be at the end before a recv looked"

        # When a recv waits there, then the consumer reports that it is caught up
        waiting = asyncio.ensure_future(consumer.recv())

        async def caught_up() -> bool:
            assert not waiting.done(), "recv returned from an empty stream"
            return consumer.pending() == 0

        await until("pending() to fall to 0", caught_up, WAIT_TIMEOUT)

        # ... and once a message is written, it is pending until handed out
        await seed(rabbitmq_url, stream, [ConnectorEvent(id="late", foreign_id="fid-late")])
        (event,) = await within(waiting, WAIT_TIMEOUT, "the late message")
        assert event.id == "late"
        # (handed out and not acknowledged; not known to be at the end until a recv looks)
        assert consumer.pending() == 2
        await consumer.ack(event)
        assert consumer.pending() == 1
    finally:
        await connector.close()


# --------------------------------------------------------------------------- 1,000 messages


class _Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    DONE = 2


def _orders(
    connector: RabbitConnector, calls: Counter[str], parallel_count: int
) -> Workflow[User, _Status]:
    """A workflow in memory whose connector starts a run per message's foreign ID (one
    step to done), counting in ``calls`` how often each message was handled."""

    async def start_run(wf: object, event: ConnectorEvent) -> None:
        calls[event.id] += 1
        try:
            await workflow.trigger(event.foreign_id, initial=User(uid=event.foreign_id))
        except WorkflowInProgress:
            pass

    async def finish(run: Run[User, _Status]) -> _Status:
        return _Status.DONE

    b = Builder(f"orders-{new_prefix()}", User, _Status)
    b.add_step(_Status.STARTED, finish, _Status.DONE)
    b.add_connector("orders", connector, start_run).with_options(parallel_count=parallel_count)
    workflow = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    return workflow


async def test_a_thousand_outside_messages_start_exactly_one_run_each_over_three_shards(
    rabbitmq_url: str, outside: list[str]
) -> None:
    # Given 1,000 messages in an outside stream, and a connector reading it in 3 shards
    stream = f"{new_prefix('k')}-orders"
    outside.append(stream)
    seeded = [ConnectorEvent(id=f"order-{i}", foreign_id=f"customer-{i}") for i in range(1000)]
    await seed(rabbitmq_url, stream, seeded)
    calls: Counter[str] = Counter()
    connector = RabbitConnector(rabbitmq_url, stream=stream)
    workflow = _orders(connector, calls, parallel_count=3)

    # When the workflow runs until every message has its run done
    try:
        async with workflow:
            for event in seeded:
                await require(
                    workflow,
                    event.foreign_id,
                    _Status.DONE,
                    User(uid=event.foreign_id),
                    timeout=4 * WAIT_TIMEOUT,
                )
    finally:
        await connector.close()

    # Then each message started exactly one run
    assert calls == Counter({e.id: 1 for e in seeded})
    for event in seeded[::97]:
        assert len(await workflow.list_runs(event.foreign_id)) == 1


async def test_run_until_idle_returns_once_the_connector_read_the_stream_to_its_end(
    rabbitmq_url: str, outside: list[str]
) -> None:
    # Given 60 messages in an outside stream, a chunk each, read by a connector in 2 shards
    # that lets one chunk at a time come (so the node sends most only after round trips)
    stream = f"{new_prefix('i')}-orders"
    outside.append(stream)
    seeded = [ConnectorEvent(id=f"order-{i}", foreign_id=f"customer-{i}") for i in range(60)]
    await seed(rabbitmq_url, stream, seeded, per_publish=1)
    calls: Counter[str] = Counter()
    connector = RabbitConnector(rabbitmq_url, stream=stream, credit=1)
    workflow = _orders(connector, calls, parallel_count=2)

    # When the workflow runs until it is idle (its connector consumers report pending)
    try:
        async with workflow:
            await run_until_idle(workflow, timeout=4 * WAIT_TIMEOUT)

            # Then idle came only after every message had started its run, and it is done
            assert calls == Counter({e.id: 1 for e in seeded})
            for event in seeded:
                runs = await workflow.list_runs(event.foreign_id)
                assert [r.status for r in runs] == [_Status.DONE], event.foreign_id
    finally:
        await connector.close()
