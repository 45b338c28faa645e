"""The ``EventStreamer`` conformance suite (luno-behaviour.md §2.1 cases A and B, plus
conveyor's).

Over 400 lines on purpose: one suite is one class of independent cases, and keeping a
contract's cases together is what lets a reader check the suite against the contract.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
import pytest_asyncio

from .._builder import Builder
from .._event import Event, Header
from .._markers import Marker
from .._protocols import Delivery, EventReceiver, EventSender, EventStreamer, OutgoingEvent
from .._record import Run
from .._workflow import Workflow
from ..adapters.memory import MemoryRecordStore, MemoryRoleScheduler, MemoryTimeoutStore
from ..testing import FakeClock, await_timeout_insert
from ._fixtures import (
    ALLOWED_TIME_DEVIATION,
    WAIT_TIMEOUT,
    User,
    foreign_ids,
    new_name,
    within,
)
from ._partitions import assert_in_log_order, redelivered

__all__ = ["EventStreamerSuite"]


class Endpoints:
    """Opens senders and receivers for one case and closes them all when it ends."""

    def __init__(self, streamer: EventStreamer) -> None:
        self.streamer = streamer
        self._opened: list[EventSender | EventReceiver] = []

    async def sender(self, topic: str) -> EventSender:
        sender = await self.streamer.new_sender(topic)
        self._opened.append(sender)
        return sender

    async def receiver(
        self, topic: str, name: str, *, stream_from_latest: bool = False
    ) -> EventReceiver:
        receiver = await self.streamer.new_receiver(
            topic, name, stream_from_latest=stream_from_latest
        )
        self._opened.append(receiver)
        return receiver

    async def aclose(self) -> None:
        """Close everything opened (again, if a case closed it already: ``close`` is idempotent)."""
        errors: list[Exception] = []
        while self._opened:
            try:
                await self._opened.pop().close()
            except Exception as exc:  # close the rest, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]


def _fid(event: Event) -> str:
    return event.foreign_id


def _id_key(event: Event) -> str:
    return str(event.id)


def _headers(topic: str, **extra: str) -> dict[str, str]:
    return {Header.TOPIC: topic, **extra}


async def _yield_to_others(times: int = 10) -> None:
    """Let other tasks run up to their next real wait (no time passes)."""
    for _ in range(times):
        await asyncio.sleep(0)


class SyncStatus(enum.IntEnum):
    """The statuses of the whole-workflow case (luno's "sync user 2")."""

    UNKNOWN = 0
    STARTED = 1
    EMAIL_SET = 2
    REGULATION_TIMEOUT = 3  # "Regulatory cool down period"
    COMPLETED = 4


SYNC_EMAIL = "andrew@workflow.com"


async def _set_email(run: Run[User, SyncStatus]) -> SyncStatus:
    run.object.email = SYNC_EMAIL
    return SyncStatus.EMAIL_SET


async def _cool_down_in_gb(run: Run[User, SyncStatus], now: datetime) -> datetime | None:
    return now + timedelta(hours=1) if run.object.country_code == "GB" else None


async def _end_cool_down(run: Run[User, SyncStatus], now: datetime) -> SyncStatus | Marker:
    if run.object.email == SYNC_EMAIL:
        return SyncStatus.REGULATION_TIMEOUT
    return run.skip()


async def _set_uid(run: Run[User, SyncStatus]) -> SyncStatus:
    run.object.uid = str(uuid.uuid4())
    return SyncStatus.COMPLETED


def _sync_user_workflow(streamer: EventStreamer, clock: FakeClock) -> Workflow[User, SyncStatus]:
    """luno's "sync user 2" on ``streamer``; everything else in memory, time on ``clock``.

    The name gets a unique suffix so that a streamer backed by a server shared between
    cases (or test sessions) keeps its topics and cursors apart.
    """
    b = Builder(f"sync user 2 {uuid.uuid4().hex[:12]}", User, SyncStatus)
    b.add_step(SyncStatus.STARTED, _set_email, SyncStatus.EMAIL_SET).with_options(
        polling_frequency=0.2, parallel_count=5
    )
    b.add_timeout(
        SyncStatus.EMAIL_SET, _cool_down_in_gb, _end_cool_down, SyncStatus.REGULATION_TIMEOUT
    ).with_options(polling_frequency=0.2)
    b.add_step(SyncStatus.REGULATION_TIMEOUT, _set_uid, SyncStatus.COMPLETED).with_options(
        polling_frequency=0.2, parallel_count=5
    )
    return b.build(
        streamer,
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        clock=clock,
    )


class StreamerCases:
    """What every streamer suite shares: the ``streamer`` fixture to override, the
    ``endpoints`` that close what a case opened, and a bounded ``recv``."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    recv_timeout: ClassVar[float] = WAIT_TIMEOUT
    """Seconds a case waits for an expected event before failing."""

    @pytest_asyncio.fixture
    async def streamer(self) -> AsyncIterator[EventStreamer]:
        """A fresh streamer for one case: override this fixture."""
        raise NotImplementedError("override the `streamer` fixture to yield an EventStreamer")
        yield  # pragma: no cover

    @pytest_asyncio.fixture
    async def endpoints(self, streamer: EventStreamer) -> AsyncIterator[Endpoints]:
        """Senders and receivers of one case, all closed (again) when it ends."""
        endpoints = Endpoints(streamer)
        try:
            yield endpoints
        finally:
            await endpoints.aclose()

    async def _recv(self, receiver: EventReceiver, max_events: int = 1) -> Sequence[Event]:
        events = await within(receiver.recv(max_events), self.recv_timeout, "an event")
        assert 1 <= len(events) <= max_events, f"recv({max_events}) returned {len(events)}"
        return events


class EventStreamerSuite(StreamerCases):
    """Conformance cases every ``EventStreamer`` (with its senders and receivers) must pass.

    Subclass it in a test module as ``Test<YourStreamer>`` and override the ``streamer``
    fixture to yield a fresh streamer per case::

        class TestMyStreamer(EventStreamerSuite):
            @pytest.fixture
            async def streamer(self) -> AsyncIterator[EventStreamer]:
                streamer = MyStreamer(...)
                yield streamer
                await streamer.close()

    Every case uses new, unique topic and receiver names, so a streamer backed by a
    server shared between cases works too. One case runs a whole workflow (steps sharded
    five ways, a timeout on a fake clock, ``Workflow.wait``) on the streamer, with the
    memory record store, role scheduler and timeout store. With pytest-asyncio's
    ``asyncio_mode = "auto"`` the override above works as written; in strict mode
    decorate it with ``@pytest_asyncio.fixture``. ``recv_timeout`` bounds every wait for
    an event; ``workflow_timeout`` bounds the whole-workflow case.
    """

    workflow_timeout: ClassVar[float] = 2 * WAIT_TIMEOUT
    """Seconds the whole-workflow case may take (start, the run, stop)."""

    async def _collect(self, receiver: EventReceiver, count: int) -> list[Event]:
        """Receive exactly ``count`` events (in as many ``recv`` calls as it takes)."""
        events: list[Event] = []

        async def collect() -> None:
            while len(events) < count:
                batch = await receiver.recv(count - len(events))
                assert 1 <= len(batch) <= count - len(events), f"recv returned {len(batch)}"
                events.extend(batch)

        await within(collect(), self.recv_timeout, f"{count} events (got {len(events)})")
        return events

    # ------------------------------------------------------------ stream from latest (§2.1 A)

    async def test_stream_from_latest_receives_only_events_sent_after_connecting(
        self, endpoints: Endpoints
    ) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        await sender.send("123", 4, _headers(topic))
        await sender.send("456", 5, _headers(topic))
        receiver = await endpoints.receiver(topic, new_name("my-receiver"), stream_from_latest=True)

        pending = asyncio.create_task(receiver.recv())
        await _yield_to_others()
        await sender.send("789", 5, _headers(topic))
        events = await within(pending, self.recv_timeout, "the event sent after connecting")

        assert foreign_ids(events) == ["789"]
        await receiver.ack(events[0])

    async def test_stream_from_latest_is_fixed_at_new_receiver_not_at_the_first_recv(
        self, endpoints: Endpoints
    ) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        await sender.send("123", 4, _headers(topic))
        await sender.send("456", 5, _headers(topic))
        receiver = await endpoints.receiver(topic, new_name("my-receiver"), stream_from_latest=True)

        await sender.send("789", 5, _headers(topic))  # after new_receiver, before any recv
        events = await self._recv(receiver)

        assert foreign_ids(events) == ["789"]

    async def test_stream_from_latest_has_no_effect_once_a_cursor_is_committed(
        self, endpoints: Endpoints
    ) -> None:
        topic = new_name("test")
        name = new_name("my-receiver")
        sender = await endpoints.sender(topic)
        await sender.send("123", 4, _headers(topic))
        first = await endpoints.receiver(topic, name, stream_from_latest=True)
        await sender.send("789", 5, _headers(topic))
        events = await self._recv(first)
        assert foreign_ids(events) == ["789"]
        await first.ack(events[0])
        await first.close()

        await sender.send("101", 5, _headers(topic))  # while no receiver is open
        second = await endpoints.receiver(topic, name, stream_from_latest=True)
        events = await self._recv(second)

        assert foreign_ids(events) == ["101"]
        await second.ack(events[0])

    async def test_stream_from_latest_on_an_empty_topic_receives_the_first_event(
        self, endpoints: Endpoints
    ) -> None:
        topic = new_name("test")
        receiver = await endpoints.receiver(topic, new_name("reader"), stream_from_latest=True)
        sender = await endpoints.sender(topic)

        await sender.send("first", 1, _headers(topic))

        assert foreign_ids(await self._recv(receiver)) == ["first"]

    # ------------------------------------------------------------ whole workflow (§2.1 B)

    async def test_a_whole_workflow_runs_through_steps_and_a_timeout(
        self, streamer: EventStreamer
    ) -> None:
        clock = FakeClock(datetime(2023, 4, 9, 8, 30, tzinfo=UTC))
        wf = _sync_user_workflow(streamer, clock)

        async def scenario() -> Run[User, SyncStatus]:
            async with wf:
                run_id = await wf.trigger("1", initial=User(country_code="GB"))
                await await_timeout_insert(
                    wf, "1", run_id, SyncStatus.EMAIL_SET, timeout=self.workflow_timeout
                )
                clock.advance(timedelta(hours=1))
                return await wf.wait("1", run_id, SyncStatus.COMPLETED)

        run = await within(scenario(), self.workflow_timeout, "the run to complete")

        assert run.object.email == SYNC_EMAIL
        assert run.status.name == "COMPLETED"
        assert run.object.uid != ""

    async def test_receiver_close_is_idempotent(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        receiver = await endpoints.receiver(topic, new_name("reader"))

        await receiver.close()
        await receiver.close()

    async def test_sender_close_is_idempotent(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        await sender.send("1", 1, _headers(topic))

        await sender.close()
        await sender.close()

    async def test_streamer_close_is_idempotent(self, streamer: EventStreamer) -> None:
        # Given a streamer that has sent and handed out an event
        topic = new_name("test")
        sender = await streamer.new_sender(topic)
        receiver = await streamer.new_receiver(topic, new_name("reader"))
        await sender.send("1", 1, _headers(topic))
        await self._recv(receiver)
        await receiver.close()
        await sender.close()

        # When it is closed twice, the second close returns (None) instead of raising
        await streamer.close()
        await streamer.close()

    # ------------------------------------------------------------ delivery

    async def test_events_round_trip_foreign_id_type_and_headers(
        self, endpoints: Endpoints
    ) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, new_name("reader"))
        headers = _headers(topic, **{"run_id": "r-1", "x-custom": "any value ☃ =;,", "empty": ""})

        await sender.send("Andrew Wormald", 7, headers)
        (event,) = await self._recv(receiver)

        assert event.foreign_id == "Andrew Wormald"
        assert event.type == 7
        assert dict(event.headers) == headers
        assert event.id >= 0
        assert event.created_at.tzinfo is not None, "created_at must be timezone-aware"
        assert abs(event.created_at - datetime.now(UTC)) <= ALLOWED_TIME_DEVIATION

    async def test_event_ids_increase_in_delivery_order(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, new_name("reader"))
        for i in range(3):
            await sender.send(f"single-{i}", 1, _headers(topic))
        await sender.send_many([OutgoingEvent(f"batch-{i}", 2, _headers(topic)) for i in range(3)])
        await sender.send("last", 3, _headers(topic))

        events = await self._collect(receiver, 7)

        ids = [e.id for e in events]
        assert all(i >= 0 for i in ids)
        assert len(set(ids)) == len(ids), f"ids not unique: {ids}"
        assert_in_log_order(receiver, events, _id_key, sorted(map(_id_key, events), key=int))
        assert_in_log_order(
            receiver,
            events,
            _fid,
            [*(f"single-{i}" for i in range(3)), *(f"batch-{i}" for i in range(3)), "last"],
        )

    async def test_send_many_keeps_order(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, new_name("reader"))
        outgoing = [OutgoingEvent(f"run-{i}", i, _headers(topic, seq=str(i))) for i in range(1, 6)]

        await sender.send_many(outgoing)
        events = await self._collect(receiver, 5)

        assert_in_log_order(receiver, events, _fid, [o.foreign_id for o in outgoing])
        assert sorted((e.foreign_id, e.type, dict(e.headers)) for e in events) == sorted(
            (o.foreign_id, o.type, dict(o.headers)) for o in outgoing
        )

    async def test_send_many_of_no_events_sends_nothing(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, new_name("reader"))

        await sender.send_many([])
        await sender.send("only", 1, _headers(topic))

        assert foreign_ids(await self._recv(receiver, max_events=5)) == ["only"]

    async def test_recv_returns_at_most_max_events(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, new_name("reader"))
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(5)])

        received: list[Event] = []
        while len(received) < 5:
            batch = await self._recv(receiver, max_events=2)  # asserts 1 <= len <= 2
            received.extend(batch)

        assert_in_log_order(receiver, received, _fid, ["0", "1", "2", "3", "4"])

    async def test_recv_hands_out_each_event_once_per_receiver(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, new_name("reader"))
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(3)])

        first = await self._collect(receiver, 3)  # none acknowledged
        await sender.send("3", 1, _headers(topic))
        after = await self._recv(receiver, max_events=10)

        assert_in_log_order(receiver, first, _fid, ["0", "1", "2"])
        assert foreign_ids(after) == ["3"]

    async def test_topics_are_independent(self, endpoints: Endpoints) -> None:
        topic, other = new_name("test"), new_name("other")
        name = new_name("reader")
        to_other = await endpoints.sender(other)
        to_topic = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, name)
        other_receiver = await endpoints.receiver(other, name)

        await to_other.send("elsewhere", 1, _headers(other))
        await to_topic.send("here", 1, _headers(topic))

        assert foreign_ids(await self._recv(receiver, max_events=10)) == ["here"]
        assert foreign_ids(await self._recv(other_receiver, max_events=10)) == ["elsewhere"]

    async def test_recv_blocks_until_an_event_is_sent(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, new_name("reader"))

        pending = asyncio.create_task(receiver.recv())
        try:
            await _yield_to_others()
            assert not pending.done(), "recv returned before any event was sent"

            await sender.send("wake", 1, _headers(topic))
            events = await within(pending, self.recv_timeout, "recv to wake up")
        finally:
            pending.cancel()

        assert foreign_ids(events) == ["wake"]

    async def test_recv_is_cancellable_and_a_cancelled_recv_loses_no_event(
        self, endpoints: Endpoints
    ) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        receiver = await endpoints.receiver(topic, new_name("reader"))
        pending = asyncio.create_task(receiver.recv())
        await _yield_to_others()

        pending.cancel()
        done, _ = await asyncio.wait({pending}, timeout=self.recv_timeout)

        assert pending in done, "recv did not stop when cancelled"
        assert pending.cancelled()
        await sender.send("after", 1, _headers(topic))
        assert foreign_ids(await self._recv(receiver)) == ["after"]

    # ------------------------------------------------------------ cursors and acknowledgement

    async def test_receivers_of_different_names_each_see_every_event(
        self, endpoints: Endpoints
    ) -> None:
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        first = await endpoints.receiver(topic, new_name("first"))
        second = await endpoints.receiver(topic, new_name("second"))

        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(3)])

        assert_in_log_order(first, await self._collect(first, 3), _fid, ["0", "1", "2"])
        assert_in_log_order(second, await self._collect(second, 3), _fid, ["0", "1", "2"])

    async def test_cursors_are_kept_per_receiver_name(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        name_a, name_b = new_name("a"), new_name("b")
        sender = await endpoints.sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(3)])
        reader_a = await endpoints.receiver(topic, name_a)
        for event in await self._collect(reader_a, 3):
            await reader_a.ack(event)
        await reader_a.close()

        # ``b`` has no cursor yet: it starts at the beginning, whatever ``a`` committed.
        reader_b = await endpoints.receiver(topic, name_b)
        assert_in_log_order(reader_b, await self._collect(reader_b, 3), _fid, ["0", "1", "2"])
        # ``a`` resumes after its own acknowledgements.
        await sender.send("3", 1, _headers(topic))
        reader_a = await endpoints.receiver(topic, name_a)
        assert foreign_ids(await self._recv(reader_a, max_events=10)) == ["3"]

    async def test_acked_events_are_not_redelivered(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        name = new_name("reader")
        sender = await endpoints.sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(3)])
        receiver = await endpoints.receiver(topic, name)
        for event in await self._collect(receiver, 3):
            await receiver.ack(event)
        await receiver.close()

        await sender.send("new", 1, _headers(topic))
        reopened = await endpoints.receiver(topic, name)

        assert foreign_ids(await self._recv(reopened, max_events=10)) == ["new"]

    async def test_unacked_events_are_redelivered_to_a_new_receiver_of_the_same_name(
        self, endpoints: Endpoints
    ) -> None:
        topic = new_name("test")
        name = new_name("reader")
        sender = await endpoints.sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(2)])
        receiver = await endpoints.receiver(topic, name)
        assert_in_log_order(receiver, await self._collect(receiver, 2), _fid, ["0", "1"])
        await receiver.close()  # nothing acknowledged

        reopened = await endpoints.receiver(topic, name)

        assert_in_log_order(reopened, await self._collect(reopened, 2), _fid, ["0", "1"])

    async def test_the_streamer_declares_its_delivery_profile(
        self, streamer: EventStreamer
    ) -> None:
        assert isinstance(streamer.delivery, Delivery), (
            f"{type(streamer).__name__}.delivery must be a conveyor.abc.Delivery, "
            f"not {streamer.delivery!r}"
        )

    async def test_a_reopened_receiver_gets_again_what_its_delivery_profile_says(
        self, endpoints: Endpoints
    ) -> None:
        # Given five events handed out, and all but the third acknowledged, out of order
        topic = new_name("test")
        name = new_name("reader")
        sender = await endpoints.sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(1, 6)])
        receiver = await endpoints.receiver(topic, name)
        handed = await self._collect(receiver, 5)
        events = {e.foreign_id: e for e in handed}
        acked = ("5", "1", "4", "2")  # out of order, and never "3"
        for fid in acked:
            await receiver.ack(events[fid])
        again = redelivered(receiver, handed, _fid, acked)
        await receiver.close()

        # When a receiver of the same name opens, and a new event follows
        reopened = await endpoints.receiver(topic, name)
        await sender.send("6", 1, _headers(topic))

        # Then a table log starts after the unbroken run of acknowledgements ("1", "2"),
        # in order (a partitioned log: in each partition, after that partition's run); a
        # broker hands out again only the unacknowledged "3" (in any order with what is
        # new); both then hand out the new event
        if endpoints.streamer.delivery is Delivery.CURSOR:
            expected = [*again, "6"]
            got = await self._collect(reopened, len(expected))
            assert_in_log_order(reopened, got, _fid, expected)
        else:
            assert sorted(foreign_ids(await self._collect(reopened, 2))) == ["3", "6"]

    async def test_acks_in_any_order_commit_the_whole_run(self, endpoints: Endpoints) -> None:
        topic = new_name("test")
        name = new_name("reader")
        sender = await endpoints.sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(1, 6)])
        receiver = await endpoints.receiver(topic, name)
        events = await self._collect(receiver, 5)
        for event in reversed(events):
            await receiver.ack(event)
        await receiver.close()

        await sender.send("6", 1, _headers(topic))
        reopened = await endpoints.receiver(topic, name)

        assert foreign_ids(await self._recv(reopened, max_events=10)) == ["6"]
