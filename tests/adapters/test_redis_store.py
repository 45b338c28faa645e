"""The Redis record store passes the record-store suites against the real server.

Each case gets a fresh store on a key prefix of its own (``open_redis``), whose keys are
deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from _redis_support import FAST_ROLES, new_prefix, open_redis, redis_url

from conveyor import (
    AdapterError,
    AdapterUnavailable,
    Builder,
    CallbackRejected,
    DecodeError,
    RecordNotFound,
    Run,
    RunState,
    WorkflowInProgress,
)
from conveyor.abc import PublishesEvents, RecordStore, RunQuery
from conveyor.adapters.redis import (
    RedisClient,
    RedisRoleScheduler,
    _listing,
    open_backend,
    open_client,
)
from conveyor.adapters.redis._record_keys import RecordKeys
from conveyor.adapters.redis._record_store import RedisRecordStore
from conveyor.adapters.redis._streamer import RedisEventStreamer
from conveyor.adapters.redis._timeout_store import RedisTimeoutStore
from conveyor.adaptertest import (
    KeepsDefinitionsSuite,
    KeepsHistorySuite,
    ListsRunsSuite,
    PinsEventLocationSuite,
    PublishesEventsSuite,
    RecordsFailuresSuite,
    RecordStoreSuite,
    StoreAndStreamer,
    dummy_record,
    failure,
    insert,
    update,
)
from conveyor.adaptertest._fixtures import FOREIGN_ID, WORKFLOW, Status, new_name
from conveyor.testing import wait_for

__all__ = ["redis_url"]

pytestmark = pytest.mark.redis

WAIT = 5.0


class _Fresh:
    """A fresh store keeping an outbox (``publish_events=false``)."""

    @pytest.fixture
    async def store(self, redis_url: str) -> AsyncIterator[RecordStore]:
        async with open_redis(redis_url) as client:
            store = RedisRecordStore(client)
            yield store
            await store.close()


class _FreshPublishing:
    """A fresh store appending its writes' events to a streamer on its client (what
    ``open_backend`` builds by default). ``RecordStoreSuite`` reads the outbox, so it runs
    on the outbox mode only; ``PublishesEventsSuite`` checks this mode's events."""

    @pytest.fixture
    async def store(self, redis_url: str) -> AsyncIterator[RecordStore]:
        async with open_redis(redis_url) as client:
            streamer = RedisEventStreamer(client)
            store = RedisRecordStore(client, events=streamer)
            yield store
            await store.close()
            await streamer.close()


class TestRedisRecordStore(_Fresh, RecordStoreSuite):
    pass


class TestRedisRecordStoreFailures(_Fresh, RecordsFailuresSuite):
    pass


class TestRedisRecordStoreHistory(_Fresh, KeepsHistorySuite):
    pass


class TestRedisRecordStoreListing(_Fresh, ListsRunsSuite):
    pass


class TestRedisRecordStoreDefinitions(_Fresh, KeepsDefinitionsSuite):
    pass


class TestRedisRecordStoreEventLocation(_Fresh, PinsEventLocationSuite):
    pass


class TestPublishingRedisRecordStoreFailures(_FreshPublishing, RecordsFailuresSuite):
    pass


class TestPublishingRedisRecordStoreHistory(_FreshPublishing, KeepsHistorySuite):
    pass


class TestPublishingRedisRecordStoreListing(_FreshPublishing, ListsRunsSuite):
    pass


class TestPublishingRedisRecordStoreDefinitions(_FreshPublishing, KeepsDefinitionsSuite):
    pass


class TestPublishingRedisRecordStoreEventLocation(_FreshPublishing, PinsEventLocationSuite):
    pass


class TestRedisRecordStorePublishesEvents(PublishesEventsSuite):
    @pytest.fixture
    async def store_and_streamer(self, redis_url: str) -> AsyncIterator[StoreAndStreamer]:
        async with open_redis(redis_url) as client:
            streamer = RedisEventStreamer(client)
            store = RedisRecordStore(client, events=streamer)
            yield StoreAndStreamer(store, streamer)
            await store.close()
            await streamer.close()


# ---------------------------------------------------------------------- beyond the suites


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RedisClient]:
    async with open_redis(redis_url) as opened:
        yield opened


@pytest.fixture
async def store(client: RedisClient) -> AsyncIterator[RedisRecordStore]:
    opened = RedisRecordStore(client)
    yield opened
    await opened.close()


async def test_a_batch_applies_its_writes_in_order(store: RedisRecordStore) -> None:
    # Given a batch that inserts a run, updates it, and inserts a second active run of
    # its foreign ID
    record = dummy_record()
    moved = update(record, status=Status.MIDDLE)
    blocked = dummy_record()

    # When it is stored
    outcomes = await store.store_many([insert(record), moved, insert(blocked)])

    # Then each write saw the ones before it
    assert outcomes[:2] == [None, None]
    assert isinstance(outcomes[2], WorkflowInProgress)
    assert (await store.lookup(record.run_id)).version == 2
    assert [e.run_id for e in await store.list_outbox_events(WORKFLOW, 10)] == [
        record.run_id,
        record.run_id,
    ]


async def test_of_concurrent_inserts_from_several_processes_one_run_is_active(
    redis_url: str,
) -> None:
    prefix = new_prefix()
    async with AsyncExitStack() as stack:
        # Given five processes' stores on the same keys
        stores = []
        for i in range(5):
            client = await stack.enter_async_context(
                open_redis(redis_url, prefix=prefix, cleanup=i == 0)
            )
            stores.append(RedisRecordStore(client))
        runs = [dummy_record() for _ in stores]

        # When each inserts an active run of one foreign ID at once
        outcomes = await asyncio.gather(
            *(s.store_many([insert(r)]) for s, r in zip(stores, runs, strict=True))
        )

        # Then exactly one is applied, and it is the foreign ID's latest run
        applied = [r for r, (o,) in zip(runs, outcomes, strict=True) if o is None]
        assert len(applied) == 1
        assert all(isinstance(o, WorkflowInProgress) for (o,) in outcomes if o is not None)
        assert (await stores[1].latest(WORKFLOW, FOREIGN_ID)).run_id == applied[0].run_id


async def test_a_write_in_another_process_wakes_wait_for_outbox(redis_url: str) -> None:
    prefix = new_prefix()
    async with (
        open_redis(redis_url, prefix=prefix) as mine,
        open_redis(redis_url, prefix=prefix, cleanup=False) as theirs,
    ):
        # Given a relay waiting on an empty outbox
        waiting, writing = RedisRecordStore(mine), RedisRecordStore(theirs)
        waiter = asyncio.create_task(waiting.wait_for_outbox(WORKFLOW, 60.0))
        try:
            # When another process stores a run of the workflow
            await writing.store(insert(dummy_record()))

            # Then the wait returns long before its timeout
            async with asyncio.timeout(WAIT):
                await waiter
        finally:
            waiter.cancel()
            await waiting.close()
            await writing.close()


async def test_wait_for_outbox_returns_at_once_while_the_outbox_holds_events(
    store: RedisRecordStore,
) -> None:
    # Given an outbox event not yet relayed
    await store.store(insert(dummy_record()))

    # When the relay waits, Then it returns at once (it lists again)
    async with asyncio.timeout(WAIT):
        await store.wait_for_outbox(WORKFLOW, 60.0)


async def test_counts_follow_runs_that_move(store: RedisRecordStore) -> None:
    # Given three runs, one of which moves to another status and run state
    runs = [dummy_record(foreign_id=f"order-{i}") for i in range(3)]
    for run in runs:
        await store.store(insert(run))
    await store.store(update(runs[1], status=Status.END, run_state=RunState.COMPLETED))

    # Then the counts read off the indexes count each run where it is now
    assert await store.count_runs(RunQuery(statuses=(Status.STARTED,))) == 2
    assert await store.count_runs(RunQuery(workflow_name=WORKFLOW, statuses=(Status.END,))) == 1
    assert await store.count_runs(RunQuery(run_states=(RunState.INITIATED,))) == 2
    assert await store.count_runs(RunQuery(run_states=(RunState.COMPLETED,))) == 1
    assert await store.count_runs(RunQuery(foreign_id="order-1")) == 1


async def test_a_prefix_matching_many_runs_is_listed_off_the_time_index(
    store: RedisRecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given more runs of a foreign ID prefix and of a run ID prefix than are gathered
    monkeypatch.setattr(_listing, "GATHER", 2)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    runs = [
        dummy_record(
            foreign_id=f"{('order', 'refund')[i % 2]}-{i}",
            run_id=f"{('abc', 'abd')[i % 3 == 0]}-{i}",
            created_at=base + timedelta(seconds=i),
        )
        for i in range(13)
    ]
    for run in runs:
        await store.store(insert(run))

    for query in [
        RunQuery(foreign_id_prefix="order"),
        RunQuery(workflow_name=WORKFLOW, foreign_id_prefix="refund-", newest_first=False),
        RunQuery(run_id_prefix="abc"),
        RunQuery(run_id_prefix="abd", foreign_id_prefix="order"),
    ]:
        # When it is listed a page of two at a time
        want = [
            r.run_id
            for r in sorted(runs, key=lambda r: r.created_at, reverse=query.newest_first)
            if r.foreign_id.startswith(query.foreign_id_prefix or "")
            and r.run_id.startswith(query.run_id_prefix or "")
        ]
        got: list[str] = []
        cursor: str | None = None
        while True:
            page = await store.list_runs(query, limit=2, cursor=cursor)
            got.extend(r.run_id for r in page.records)
            if page.cursor is None:
                break
            cursor = page.cursor

        # Then every match comes once, in order, and the count agrees
        assert len(want) > 2, query
        assert got == want, query
        assert await store.count_runs(query) == len(want), query


async def test_a_run_that_no_longer_decodes_is_a_stand_in(
    store: RedisRecordStore, client: RedisClient
) -> None:
    # Given a stored run whose run state was overwritten with one outside RunState
    record = dummy_record()
    healthy = dummy_record(foreign_id="healthy")
    await store.store(insert(record))
    await store.store(insert(healthy))
    await client.command(
        "test", "HSET", RecordKeys(client.options.key_prefix).run(record.run_id), "run_state", "99"
    )

    # When it is looked up, Then DecodeError carries a stand-in at the stored version
    with pytest.raises(DecodeError) as raised:
        await store.lookup(record.run_id)
    stand_in = raised.value.record
    assert stand_in is not None
    assert (stand_in.run_id, stand_in.version) == (record.run_id, 1)
    assert stand_in.run_state is RunState.UNKNOWN
    assert "run_state" in stand_in.meta.run_state_reason
    with pytest.raises(DecodeError):
        await store.latest(WORKFLOW, FOREIGN_ID)
    # ... and the lists hand the stand-in out among the healthy records
    listed = await store.list(WORKFLOW)
    assert [(r.run_id, r.run_state) for r in listed] == [
        (record.run_id, RunState.UNKNOWN),
        (healthy.run_id, RunState.INITIATED),
    ]
    page = await store.list_runs(RunQuery(newest_first=False))
    assert [r.run_id for r in page.records] == [record.run_id, healthy.run_id]


async def test_outbox_headers_that_no_longer_decode_are_listed_empty(
    store: RedisRecordStore, client: RedisClient
) -> None:
    # Given an outbox event whose stored headers were overwritten with bytes that are no
    # JSON object
    await store.store(insert(dummy_record()))
    key = RecordKeys(client.options.key_prefix).outbox(WORKFLOW)
    ((entry_id, fields),) = await client.command("test", "XRANGE", key, "-", "+")
    await client.command("test", "XDEL", key, entry_id)
    spoilt = {**fields, b"h": b"\xff not json"}
    await client.command("test", "XADD", key, "*", *[x for kv in spoilt.items() for x in kv])

    # When the outbox is listed, Then the event is there with empty headers
    (event,) = await store.list_outbox_events(WORKFLOW, 10)
    assert dict(event.headers) == {}


async def test_every_key_is_under_the_key_prefix(redis_url: str) -> None:
    # Given two stores on two prefixes, one of which holds runs, failures, definitions ...
    async with open_redis(redis_url) as used, open_redis(redis_url) as unused:
        store, other = RedisRecordStore(used), RedisRecordStore(unused)
        record = dummy_record()
        await store.store(insert(record))
        assert await store.record_failure(failure(record))
        await store.register_definition(WORKFLOW, "h", "{}", datetime.now(UTC))
        await store.pin_event_location("store")

        # Then the other sees none of it, and its prefix holds no key
        with pytest.raises(RecordNotFound):
            await other.lookup(record.run_id)
        assert list(await other.list()) == []
        assert list(await other.definitions()) == []
        scanned = await unused.command(
            "test", "SCAN", 0, "MATCH", unused.options.keys.pattern, "COUNT", 1000
        )
        assert scanned[1] == []
        await store.close()
        await other.close()


async def test_an_unreachable_server_is_adapter_unavailable_without_the_password() -> None:
    # Given a store on a port where no server listens, with a password in its URL
    store = RedisRecordStore.open("redis://:s3cret-pass@127.0.0.1:1/0", connect_timeout=1.0)
    try:
        # When it is used, Then AdapterUnavailable says so without the password
        with pytest.raises(AdapterUnavailable) as raised:
            await store.lookup("some-run")
        assert "s3cret-pass" not in str(raised.value)
        with pytest.raises(AdapterUnavailable):
            await store.store(insert(dummy_record()))
    finally:
        await store.close()


class Order(enum.IntEnum):
    UNKNOWN = 0
    PLACED = 1
    PAID = 2
    PACKED = 3
    SHIPPED = 4
    LATE = 5


@dataclass
class Parcel:
    items: int = 1


async def _pack(run: Run[Parcel, Order]) -> Order:
    return Order.PACKED


async def _ship(run: Run[Parcel, Order]) -> Order:
    return Order.SHIPPED


def _paid(run: Run[Parcel, Order], payload: bytes) -> Order:
    return Order.PAID


def _at_once(run: Run[Parcel, Order], now: datetime) -> datetime:
    return now


def _late(run: Run[Parcel, Order], now: datetime) -> Order:
    return Order.LATE


@pytest.mark.parametrize("publishing", [False, True], ids=["outbox", "publishing"])
async def test_a_workflow_runs_end_to_end_on_the_redis_adapters(
    redis_url: str, publishing: bool
) -> None:
    # Given a workflow whose records, timeouts, events and roles are all in Redis: runs
    # that are paid (a callback) are packed and shipped, the others time out
    b = Builder("parcels", Parcel, Order)
    b.add_callback(Order.PLACED, _paid, Order.PAID)
    b.add_timeout(Order.PLACED, _at_once, _late, Order.LATE)
    b.add_step(Order.PAID, _pack, Order.PACKED)
    b.add_step(Order.PACKED, _ship, Order.SHIPPED)
    async with open_redis(redis_url, **FAST_ROLES) as client:
        streamer, roles = RedisEventStreamer(client), RedisRoleScheduler(client)
        store = RedisRecordStore(client, events=streamer if publishing else None)
        timeouts = RedisTimeoutStore(client)
        wf = b.build(streamer, store, roles, timeout_store=timeouts)
        assert ("outbox-consumer" in wf.process_names()) is not publishing
        try:
            async with wf:
                # When ten runs are triggered and the even ones paid
                run_ids = [await wf.trigger(f"p-{i}", initial=Parcel(items=i)) for i in range(10)]
                for i in range(0, 10, 2):
                    await wf.wait(f"p-{i}", run_ids[i], Order.PLACED)
                    with contextlib.suppress(CallbackRejected):  # the timeout may win the race
                        await wf.callback(f"p-{i}", Order.PLACED, b"paid")

                # Then every run ends, shipped or late, each at the version it should
                for i in range(10):
                    run = await wait_for(wf, f"p-{i}", lambda r: r.status in _ENDS)
                    assert run.object.items == i
                    assert run.meta.version == (4 if run.status is Order.SHIPPED else 2)
                    history = await store.history(run.run_id)
                    assert [e.version for e in history] == list(range(1, run.meta.version + 1))
                late = await store.count_runs(RunQuery(statuses=(Order.LATE,)))
                shipped = await store.count_runs(RunQuery(statuses=(Order.SHIPPED,)))
                assert late + shipped == 10
                assert late >= 5
        finally:
            await roles.close()
            await streamer.close()
            await timeouts.close()
            await store.close()


_ENDS = (Order.SHIPPED, Order.LATE)


# ---------------------------------------------------------------------- publishing its events


async def test_open_backend_builds_a_publishing_store_unless_told_not_to(redis_url: str) -> None:
    prefix = new_prefix()
    async with open_backend(f"{redis_url}?key_prefix={prefix}") as backend:
        store = backend.record_store
        assert isinstance(store, PublishesEvents)
        assert store.publishes_to is backend.streamer
        try:
            async with open_backend(redis_url, key_prefix=prefix, publish_events=False) as other:
                assert isinstance(other.record_store, PublishesEvents)
                assert other.record_store.publishes_to is None
                record = dummy_record(new_name("wf"))
                await other.record_store.store(insert(record))
                listed = await other.record_store.list_outbox_events(record.workflow_name, 9)
                assert [e.run_id for e in listed] == [record.run_id]
        finally:
            await backend.client.delete_prefix(backend.client.options.keys.pattern)


def test_publish_events_is_a_boolean() -> None:
    off = open_client("redis://127.0.0.1:6379/0?publish_events=false")
    assert off.options.publish_events is False
    with pytest.raises(AdapterError, match="publish_events"):
        open_client("redis://127.0.0.1:6379/0?publish_events=maybe")
    with pytest.raises(AdapterError, match="publish_events"):
        open_client("redis://127.0.0.1:6379/0", publish_events="false")


async def test_a_store_publishes_only_to_a_streamer_on_its_own_database(redis_url: str) -> None:
    async with open_redis(redis_url) as client:
        elsewhere = open_client("redis://127.0.0.1:6379/15")
        streamer = RedisEventStreamer(elsewhere)
        try:
            with pytest.raises(AdapterError, match="own Redis database"):
                RedisRecordStore(client, events=streamer)
        finally:
            await streamer.close()
            await elsewhere.close()


async def test_a_published_write_is_pending_at_once_and_wakes_a_reader_elsewhere(
    redis_url: str,
) -> None:
    prefix = new_prefix()
    async with (
        open_redis(redis_url, prefix=prefix) as mine,
        open_redis(redis_url, prefix=prefix, cleanup=False) as theirs,
    ):
        # Given a receiver of this process and one of another process on a topic
        here, there = RedisEventStreamer(mine), RedisEventStreamer(theirs)
        store = RedisRecordStore(mine, events=here)
        record = dummy_record(new_name("wf"))
        write = insert(record)
        local = await here.new_receiver(write.outbox.topic, "local")
        remote = await there.new_receiver(write.outbox.topic, "remote")
        remote_read = asyncio.create_task(remote.recv(5))
        try:
            assert local.pending() == 0

            # When this process's publishing store writes a run
            await store.store(write)

            # Then this process's receiver is behind at once, without a read
            assert local.pending() > 0
            # ... and the other process's blocked read gets the event
            async with asyncio.timeout(WAIT):
                (event,) = await remote_read
            assert (event.foreign_id, event.type) == (record.run_id, write.outbox.type)
            (mine_too,) = await local.recv(5)
            assert mine_too.id == event.id
        finally:
            remote_read.cancel()
            await store.close()
            await here.close()
            await there.close()


async def test_the_streamer_trims_the_topics_its_store_publishes_to(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a publishing store whose streamer trims often and keeps nothing acknowledged
    async with open_redis(redis_url, trim_interval=0.05, event_retention=0.0) as client:
        streamer = RedisEventStreamer(client)
        store = RedisRecordStore(client, events=streamer)
        write = insert(dummy_record(new_name("wf")))
        receiver = await streamer.new_receiver(write.outbox.topic, "reader")
        removed = asyncio.Event()
        trim = streamer.trim

        async def noting(topic: str) -> int:
            count = await trim(topic)
            if topic == write.outbox.topic and count:
                removed.set()
            return count

        monkeypatch.setattr(streamer, "trim", noting)
        try:
            # When a run is written and its event acknowledged
            await store.store(write)
            async with asyncio.timeout(WAIT):
                (event,) = await receiver.recv(5)
            await receiver.ack(event)

            # Then the streamer's own trimming empties the topic (never sent to by it)
            async with asyncio.timeout(WAIT):
                await removed.wait()
            stream = client.options.keys.stream(write.outbox.topic)
            assert await client.command("test", "XLEN", stream) == 0
        finally:
            await receiver.close()
            await store.close()
            await streamer.close()
