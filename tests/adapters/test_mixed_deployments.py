"""``conveyor.connect(url, events=, roles=, timeouts=)``: parts of a deployment on other URLs.

The first URL names the record store and gives every part not named; a part's URL replaces
it. With events elsewhere the record store keeps an outbox that the workflow's relay sends
on, and where the events go is recorded in the store, so that a process configured
otherwise is refused instead of splitting the event stream.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import _nats_support
import _rabbitmq_support
import _redis_support
import pytest
from _kafka_support import KafkaCluster, kafka
from _nats_support import nats_url
from _pg_support import pg_url
from _rabbitmq_support import rabbitmq_url
from _redis_support import redis_url

import conveyor
from conveyor import Builder, Run, RunState
from conveyor._connect import event_location
from conveyor.abc import Parts, PublishesEvents, register_parts
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRoleScheduler
from conveyor.adapters.nats import NatsEventStreamer, NatsRoleScheduler
from conveyor.adapters.postgres import PostgresEventStreamer, PostgresRecordStore
from conveyor.adapters.redis import (
    RedisEventStreamer,
    RedisRecordStore,
    RedisRoleScheduler,
    RedisTimeoutStore,
    open_client,
)
from conveyor.adapters.sqlite import SQLiteEventStreamer, SQLiteRecordStore, SQLiteRoleScheduler
from conveyor.testing import run_until_idle

__all__ = ["kafka", "nats_url", "pg_url", "rabbitmq_url", "redis_url"]

WAIT = 30.0


class Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    MIDDLE = 2
    DONE = 3


async def _bump(run: Run[dict[str, int], Status]) -> Status:
    run.object["n"] = run.object.get("n", 0) + 1
    return Status.MIDDLE if run.status is Status.STARTED else Status.DONE


def _builder(name: str) -> Builder[dict[str, int], Status]:
    b: Builder[dict[str, int], Status] = Builder(name, dict, Status)
    b.add_step(Status.STARTED, _bump, Status.MIDDLE)
    b.add_step(Status.MIDDLE, _bump, Status.DONE)
    return b


async def _run_ten(backend: conveyor.Backend, name: str) -> None:
    wf = _builder(name).build(
        backend.streamer,
        backend.record_store,
        backend.role_scheduler,
        timeout_store=backend.timeout_store,
    )
    async with wf:
        run_ids = [await wf.trigger(f"fid-{i}") for i in range(10)]
        async with asyncio.timeout(WAIT):
            for i, run_id in enumerate(run_ids):
                done = await wf.wait(f"fid-{i}", run_id, Status.DONE)
                assert done.object == {"n": 2}
        await run_until_idle(wf, timeout=WAIT)
    for run_id in run_ids:
        record = await backend.record_store.lookup(run_id)
        assert (record.meta.version, record.run_state) == (3, RunState.COMPLETED)


def _installation(pg_url: str) -> str:
    """A PostgreSQL installation of its own (a table prefix) in the test database."""
    return f"{pg_url}?table_prefix=mx{uuid.uuid4().hex[:8]}_&migrate=true"


async def test_records_on_sqlite_and_events_on_postgres_run_through_the_outbox(
    tmp_path: Path, pg_url: str
) -> None:
    # Given a deployment with its records in SQLite and its events in PostgreSQL
    async with conveyor.connect(
        f"sqlite:///{tmp_path / 'records.db'}", events=_installation(pg_url)
    ) as backend:
        # Then the parts come from their URLs
        assert isinstance(backend.record_store, SQLiteRecordStore)
        assert isinstance(backend.streamer, PostgresEventStreamer)
        assert isinstance(backend.role_scheduler, SQLiteRoleScheduler)
        # And runs go through (the relay moves each write's outbox event to PostgreSQL)
        await _run_ten(backend, "sqlite-records")
        assert await backend.record_store.list_outbox_events("sqlite-records", 10) == []


async def test_postgres_records_with_events_elsewhere_keep_an_outbox_instead_of_publishing(
    tmp_path: Path, pg_url: str
) -> None:
    # Given PostgreSQL records, which publish their own events when nothing else is named
    url = _installation(pg_url)
    async with conveyor.connect(url) as alone:
        assert isinstance(alone.record_store, PublishesEvents)
        assert alone.record_store.publishes_to is alone.streamer
    other = _installation(pg_url)
    async with conveyor.connect(other, events=f"sqlite:///{tmp_path / 'events.db'}") as mixed:
        # Then with events elsewhere the store keeps an outbox, and runs go through
        assert isinstance(mixed.record_store, PostgresRecordStore)
        assert mixed.record_store.publishes_to is None
        assert isinstance(mixed.streamer, SQLiteEventStreamer)
        await _run_ten(mixed, "pg-records")


async def test_a_process_configured_with_other_events_is_refused(
    tmp_path: Path, pg_url: str
) -> None:
    # Given a deployment whose events were first sent to its own event log
    url = _installation(pg_url)
    async with conveyor.connect(url):
        pass

    # When a process would send them to a SQLite file instead
    events = f"sqlite:///{tmp_path / 'events.db'}"
    with pytest.raises(conveyor.AdapterError) as raised:
        async with conveyor.connect(url, events=events):
            pass

    # Then it is refused, and told where the events go
    assert "the record store's own event log" in str(raised.value)
    assert "sqlite://" in str(raised.value)

    # And the other way round too: a deployment pinned to events elsewhere
    other = _installation(pg_url)
    async with conveyor.connect(other, events=events):
        pass
    with pytest.raises(conveyor.AdapterError, match="events go to sqlite://"):
        async with conveyor.connect(other):
            pass
    async with conveyor.connect(other, events=events):  # the same parts still open
        pass


async def test_the_recorded_location_holds_no_secret(pg_url: str) -> None:
    assert (
        event_location("redis://:s3cret@cache:6379/0?key_prefix=wf", "sqlite:///a.db")
        == "redis://cache:6379/0"
    )
    assert event_location(None, "sqlite:///a.db") == "store"
    assert event_location("sqlite:///a.db", "sqlite:///a.db") == "store"


@asynccontextmanager
async def _only_events(url: str) -> AsyncIterator[Parts]:
    streamer = MemoryEventStreamer()
    yield Parts(url, streamer=streamer)
    await streamer.close()


@asynccontextmanager
async def _only_roles(url: str) -> AsyncIterator[Parts]:
    yield Parts(url, role_scheduler=MemoryRoleScheduler())


async def test_parts_come_from_registered_broker_urls_and_a_missing_part_is_named(
    tmp_path: Path,
) -> None:
    # Given two broker schemes: one gives only events, the other only roles
    register_parts("eventsonly", f"{__name__}:_only_events")
    register_parts("rolesonly", f"{__name__}:_only_roles")
    store = f"sqlite:///{tmp_path / 'records.db'}"

    # When a deployment takes its events and roles from them
    async with conveyor.connect(
        store, events="eventsonly://u:pw@broker/1", roles="rolesonly://r"
    ) as backend:
        # Then it has them, the rest from the store, and its repr shows no password
        assert isinstance(backend.streamer, MemoryEventStreamer)
        assert isinstance(backend.role_scheduler, MemoryRoleScheduler)
        assert isinstance(backend.record_store, SQLiteRecordStore)
        assert "pw" not in repr(backend)
        await _run_ten(backend, "broker-parts")

    # And a part a URL does not give is named in the error
    with pytest.raises(
        conveyor.AdapterError, match=r"eventsonly:// gives no timeouts \(it gives: events\)"
    ):
        async with conveyor.connect(store, timeouts="eventsonly://b"):
            pass
    # And a broker URL cannot hold the records
    with pytest.raises(conveyor.AdapterError, match="keeps no records"):
        async with conveyor.connect("eventsonly://b"):
            pass


@pytest.mark.parametrize("records", ["sqlite", "postgresql"])
async def test_events_on_redis_with_roles_on_redis(
    records: str, tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    # Given records in SQLite or PostgreSQL, and events and roles on Redis
    prefix = _redis_support.new_prefix()
    broker = f"{redis_url}?key_prefix={prefix}"
    store = f"sqlite:///{tmp_path / 'r.db'}" if records == "sqlite" else _installation(pg_url)
    try:
        async with conveyor.connect(store, events=broker, roles=broker) as backend:
            # Then the parts are Redis's, and runs go through the outbox to Redis Streams
            assert isinstance(backend.streamer, RedisEventStreamer)
            assert isinstance(backend.role_scheduler, RedisRoleScheduler)
            await _run_ten(backend, f"on-redis-{records}")
    finally:
        client = open_client(broker)
        await client.delete_prefix(client.options.keys.pattern)
        await client.close()


@pytest.mark.rabbitmq
@pytest.mark.parametrize("records", ["sqlite", "postgresql"])
async def test_events_on_rabbitmq_with_roles_on_the_record_store(
    records: str, tmp_path: Path, pg_url: str, rabbitmq_url: str
) -> None:
    # Given records (and roles) in SQLite or PostgreSQL, events on RabbitMQ streams
    from conveyor.adapters.rabbitmq import RabbitEventStreamer

    events = _rabbitmq_support.with_options(rabbitmq_url, prefix=_rabbitmq_support.new_prefix())
    store = f"sqlite:///{tmp_path / 'r.db'}" if records == "sqlite" else _installation(pg_url)
    made: list[str] = []
    try:
        async with conveyor.connect(store, events=events) as backend:
            # Then runs go through the outbox to the topics' streams
            assert isinstance(backend.streamer, RabbitEventStreamer)
            await _run_ten(backend, f"on-rabbitmq-{records}")
            made = backend.streamer.connection.known_streams
    finally:
        await _rabbitmq_support.delete_streams(rabbitmq_url, made)


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("records", "roles"), [("sqlite", "the record store"), ("postgresql", "redis")]
)
async def test_events_on_kafka_with_roles_on_the_record_store_or_redis(
    records: str, roles: str, tmp_path: Path, pg_url: str, redis_url: str, kafka: KafkaCluster
) -> None:
    # Given records in SQLite (roles too) or PostgreSQL (roles on Redis), events on Kafka
    # under a prefix of this test's, the workflow's topics created first (on the mock
    # cluster through its process: it has no CreateTopics; on a real one by the streamer)
    from conveyor.adapters.kafka import KafkaEventStreamer, escape

    name = f"on-kafka-{records}"
    prefix = f"mx{uuid.uuid4().hex[:8]}-"
    events = f"{kafka.url}?prefix={prefix}"
    if kafka.mock is None:
        events += "&create_topics=true"
    else:
        statuses = [f"{name}-{int(s)}" for s in Status if s]
        for topic in [*statuses, f"{name}-run-state-change", f"{name}-delete"]:
            kafka.mock.create(escape(topic, prefix), 3)
    store = f"sqlite:///{tmp_path / 'r.db'}" if records == "sqlite" else _installation(pg_url)
    parts = {"roles": f"{redis_url}?key_prefix={_redis_support.new_prefix()}"}
    if roles == "the record store":
        parts = {}
    try:
        async with conveyor.connect(store, events=events, **parts) as backend:
            # Then the events are Kafka's, and runs go through the outbox to its topics
            assert isinstance(backend.streamer, KafkaEventStreamer)
            expected = RedisRoleScheduler if roles == "redis" else SQLiteRoleScheduler
            assert isinstance(backend.role_scheduler, expected)
            await _run_ten(backend, name)
            assert await backend.record_store.list_outbox_events(name, 10) == []
    finally:
        if "roles" in parts:
            client = open_client(parts["roles"])
            await client.delete_prefix(client.options.keys.pattern)
            await client.close()


@pytest.mark.parametrize("records", ["sqlite", "postgresql"])
async def test_events_on_nats_with_roles_on_redis(
    records: str, tmp_path: Path, pg_url: str, redis_url: str, nats_url: str
) -> None:
    # Given records in SQLite or PostgreSQL, events on NATS JetStream, roles on Redis
    prefix = _nats_support.new_prefix("mx")
    roles = f"{redis_url}?key_prefix={_redis_support.new_prefix()}"
    store = f"sqlite:///{tmp_path / 'r.db'}" if records == "sqlite" else _installation(pg_url)
    try:
        async with conveyor.connect(
            store, events=_nats_support.with_options(nats_url, prefix=prefix), roles=roles
        ) as backend:
            # Then runs go through the outbox to JetStream
            assert isinstance(backend.streamer, NatsEventStreamer)
            await _run_ten(backend, f"on-nats-{records}")
    finally:
        await _nats_support.delete_prefix(nats_url, prefix)
        client = open_client(roles)
        await client.delete_prefix(client.options.keys.pattern)
        await client.close()


async def test_everything_on_redis_or_only_the_timeouts(tmp_path: Path, redis_url: str) -> None:
    prefix = _redis_support.new_prefix()
    url = f"{redis_url}?key_prefix={prefix}"
    try:
        # Given one Redis URL: all four parts on it
        async with conveyor.connect(url) as backend:
            assert isinstance(backend.record_store, RedisRecordStore)
            assert isinstance(backend.timeout_store, RedisTimeoutStore)
            await _run_ten(backend, "all-on-redis")
        # And a SQLite deployment that keeps only its timeouts on Redis
        store = f"sqlite:///{tmp_path / 'r.db'}"
        async with conveyor.connect(store, timeouts=url) as backend:
            assert isinstance(backend.record_store, SQLiteRecordStore)
            assert isinstance(backend.timeout_store, RedisTimeoutStore)
            await _run_ten(backend, "timeouts-on-redis")
    finally:
        client = open_client(url)
        await client.delete_prefix(client.options.keys.pattern)
        await client.close()


async def test_redis_records_publish_their_own_events_unless_events_go_elsewhere(
    tmp_path: Path, redis_url: str
) -> None:
    url = f"{redis_url}?key_prefix={_redis_support.new_prefix()}"
    other = f"{redis_url}?key_prefix={_redis_support.new_prefix()}"
    try:
        async with conveyor.connect(url) as alone:
            assert isinstance(alone.record_store, PublishesEvents)
            assert alone.record_store.publishes_to is alone.streamer
        async with conveyor.connect(other, events=f"sqlite:///{tmp_path / 'e.db'}") as mixed:
            assert isinstance(mixed.record_store, RedisRecordStore)
            assert mixed.record_store.publishes_to is None
            await _run_ten(mixed, "redis-records-sqlite-events")
    finally:
        for prefixed in (url, other):
            client = open_client(prefixed)
            await client.delete_prefix(client.options.keys.pattern)
            await client.close()


async def test_events_and_roles_on_nats(tmp_path: Path, nats_url: str) -> None:
    # Given SQLite records with events and roles on one NATS URL (one connection)
    prefix = _nats_support.new_prefix("mr")
    broker = _nats_support.with_options(nats_url, prefix=prefix)
    try:
        async with conveyor.connect(
            f"sqlite:///{tmp_path / 'r.db'}", events=broker, roles=broker
        ) as backend:
            # Then both come from NATS, and runs go through
            assert isinstance(backend.streamer, NatsEventStreamer)
            assert isinstance(backend.role_scheduler, NatsRoleScheduler)
            await _run_ten(backend, "on-nats-roles")
    finally:
        await _nats_support.delete_prefix(nats_url, prefix)
