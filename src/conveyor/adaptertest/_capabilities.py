"""Conformance suites of the capabilities (``conveyor.abc.ReportsPending`` and the others).

An adapter that claims a capability runs its suite beside the suite of the contract it
extends, with the same fixture: ``streamer`` for ``ReportsPendingSuite``, ``store`` for
``KeepsSnapshotsSuite``, ``NotifiesChangesSuite`` and ``ReportsOutboxSuite``.
``PublishesEventsSuite`` needs a store and the streamer it publishes to, together: its
fixture ``store_and_streamer`` yields a ``StoreAndStreamer``. Each suite's first case
checks that the adapter claims the capability (``isinstance``); the others check the
promise written on the capability's Protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar, NamedTuple

import pytest
import pytest_asyncio

from .._capabilities import (
    KeepsSnapshots,
    NotifiesChanges,
    PublishesEvents,
    ReportsOutbox,
    ReportsPending,
)
from .._errors import VersionConflict, WorkflowInProgress
from .._event import Event
from .._protocols import (
    EventReceiver,
    EventStreamer,
    OutgoingEvent,
    RecordStore,
    RecordWrite,
)
from .._record import Record
from .._runstate import RunState
from ._event_streamer import Endpoints, _headers, _yield_to_others
from ._fixtures import (
    FOREIGN_ID,
    SECOND_WORKFLOW,
    WAIT_TIMEOUT,
    WORKFLOW,
    Status,
    assert_record_equal,
    dummy_record,
    foreign_ids,
    insert,
    new_name,
    update,
    within,
)

__all__ = [
    "KeepsSnapshotsSuite",
    "NotifiesChangesSuite",
    "PublishesEventsSuite",
    "ReportsOutboxSuite",
    "ReportsPendingSuite",
    "StoreAndStreamer",
]


def _pending_of(receiver: EventReceiver) -> int:
    assert isinstance(receiver, ReportsPending), (
        f"{type(receiver).__name__} has no pending(): it does not report pending events"
    )
    pending = receiver.pending()
    assert isinstance(pending, int), f"pending() returned {pending!r}, not an int"
    assert pending >= 0, f"pending() returned {pending}"
    return pending


# --------------------------------------------------------------------------- ReportsPending


class ReportsPendingSuite:
    """Cases for event receivers that report whether they are behind (``ReportsPending``).

    Override the ``streamer`` fixture as for ``EventStreamerSuite`` (the same streamer
    passes both)::

        class TestMyStreamerPending(ReportsPendingSuite):
            @pytest.fixture
            async def streamer(self) -> AsyncIterator[EventStreamer]:
                streamer = MyStreamer(...)
                yield streamer
                await streamer.close()

    ``pending()`` is a hint: the cases only ask for a positive number while an event sent
    (in this process) waits to be handed out, and for ``0`` once the receiver has handed
    out everything sent. They never ask a fresh receiver on an empty topic for ``0``: a
    backend may only know it is caught up after a read that reached the end. Topic and
    receiver names are unique per case. ``recv_timeout`` bounds every wait for an event.
    """

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

    async def _recv(self, receiver: EventReceiver, max_events: int) -> Sequence[Event]:
        events = await within(receiver.recv(max_events), self.recv_timeout, "an event")
        assert 1 <= len(events) <= max_events, f"recv({max_events}) returned {len(events)}"
        return events

    async def test_receivers_report_pending(self, endpoints: Endpoints) -> None:
        receiver = await endpoints.receiver(new_name("test"), new_name("reader"))

        assert isinstance(receiver, ReportsPending)

    async def test_pending_is_positive_until_every_sent_event_is_handed_out_then_zero(
        self, endpoints: Endpoints
    ) -> None:
        # Given a receiver and three events sent to its topic
        topic = new_name("test")
        receiver = await endpoints.receiver(topic, new_name("reader"))
        sender = await endpoints.sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(3)])

        # Then it reports pending events until it has handed out the third one
        assert _pending_of(receiver) > 0, "three events were sent, none handed out"
        handed_out: list[Event] = []
        while len(handed_out) < 3:
            handed_out.extend(await self._recv(receiver, 1))
            if len(handed_out) < 3:
                assert _pending_of(receiver) > 0, f"{3 - len(handed_out)} not handed out yet"

        # And then 0 (nothing was acknowledged: handed out is what counts)
        assert foreign_ids(handed_out) == ["0", "1", "2"]
        assert _pending_of(receiver) == 0, "every event sent was handed out"

    async def test_pending_is_zero_after_one_recv_handed_out_every_event(
        self, endpoints: Endpoints
    ) -> None:
        # Given two events sent to a receiver's topic
        topic = new_name("test")
        receiver = await endpoints.receiver(topic, new_name("reader"))
        sender = await endpoints.sender(topic)
        await sender.send("a", 1, _headers(topic))
        await sender.send("b", 1, _headers(topic))

        # When it hands them out, in as few recv calls as it likes (room for more)
        handed_out: list[Event] = []
        while len(handed_out) < 2:
            handed_out.extend(await self._recv(receiver, 10))

        # Then it reports 0, and acknowledging changes nothing
        assert foreign_ids(handed_out) == ["a", "b"]
        assert _pending_of(receiver) == 0
        for event in handed_out:
            await receiver.ack(event)
        assert _pending_of(receiver) == 0

    async def test_events_sent_before_the_receiver_opened_are_pending(
        self, endpoints: Endpoints
    ) -> None:
        # Given an event on a topic
        topic = new_name("test")
        sender = await endpoints.sender(topic)
        await sender.send("early", 1, _headers(topic))

        # When a receiver with no stored cursor opens from the start of the topic
        receiver = await endpoints.receiver(topic, new_name("reader"))

        # Then the event is pending for it until handed out
        assert _pending_of(receiver) > 0
        assert foreign_ids(await self._recv(receiver, 10)) == ["early"]
        assert _pending_of(receiver) == 0

    async def test_events_sent_by_another_sender_are_pending(self, endpoints: Endpoints) -> None:
        # Given a caught-up receiver (it handed out the one event of its topic)
        topic = new_name("test")
        receiver = await endpoints.receiver(topic, new_name("reader"))
        first = await endpoints.sender(topic)
        await first.send("first", 1, _headers(topic))
        assert foreign_ids(await self._recv(receiver, 10)) == ["first"]
        assert _pending_of(receiver) == 0

        # When another sender of the topic sends
        other = await endpoints.sender(topic)
        await other.send("second", 1, _headers(topic))

        # Then its event is pending until handed out
        assert _pending_of(receiver) > 0
        assert foreign_ids(await self._recv(receiver, 10)) == ["second"]
        assert _pending_of(receiver) == 0

    async def test_events_of_another_topic_are_not_pending(self, endpoints: Endpoints) -> None:
        # Given a caught-up receiver
        topic, other = new_name("test"), new_name("other")
        receiver = await endpoints.receiver(topic, new_name("reader"))
        sender = await endpoints.sender(topic)
        await sender.send("mine", 1, _headers(topic))
        assert foreign_ids(await self._recv(receiver, 10)) == ["mine"]

        # When events are sent to another topic
        elsewhere = await endpoints.sender(other)
        await elsewhere.send_many([OutgoingEvent(str(i), 1, _headers(other)) for i in range(3)])

        # Then nothing is pending for it
        assert _pending_of(receiver) == 0

    async def test_unacknowledged_events_are_pending_for_a_reopened_receiver(
        self, endpoints: Endpoints
    ) -> None:
        # Given a receiver that handed out two events, acknowledged neither, and closed
        topic, name = new_name("test"), new_name("reader")
        sender = await endpoints.sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, _headers(topic)) for i in range(2)])
        first = await endpoints.receiver(topic, name)
        handed_out: list[Event] = []
        while len(handed_out) < 2:
            handed_out.extend(await self._recv(first, 10))
        await first.close()

        # When a receiver of the same name opens
        reopened = await endpoints.receiver(topic, name)

        # Then both events are pending again: they will be handed out again
        assert _pending_of(reopened) > 0
        again: list[Event] = []
        while len(again) < 2:
            again.extend(await self._recv(reopened, 10))
        assert foreign_ids(again) == ["0", "1"]
        assert _pending_of(reopened) == 0

    async def test_a_closed_receiver_still_answers_pending(self, endpoints: Endpoints) -> None:
        # Given a receiver with an event it has not handed out
        topic = new_name("test")
        receiver = await endpoints.receiver(topic, new_name("reader"))
        sender = await endpoints.sender(topic)
        await sender.send("left", 1, _headers(topic))

        # When it is closed (a stopping process closes its receiver while idleness checks
        # may still look at it)
        await receiver.close()

        # Then pending() answers with a number instead of raising
        _pending_of(receiver)


# --------------------------------------------------------------------------- PublishesEvents


class StoreAndStreamer(NamedTuple):
    """The ``store_and_streamer`` fixture of ``PublishesEventsSuite``: a store that publishes
    its writes' events, and the streamer it publishes them to."""

    store: RecordStore
    streamer: EventStreamer


class PublishesEventsSuite:
    """Cases for record stores that append each write's event to a streamer themselves.

    Override the ``store_and_streamer`` fixture to yield a fresh, empty store built to
    publish to a streamer, with that streamer::

        class TestMyPublishingStore(PublishesEventsSuite):
            @pytest.fixture
            async def store_and_streamer(self) -> AsyncIterator[StoreAndStreamer]:
                streamer = MyStreamer(...)
                store = MyStore(..., events=streamer)
                yield StoreAndStreamer(store, streamer)
                await store.close()
                await streamer.close()

    Built this way the store keeps no outbox (run ``RecordStoreSuite`` on it built without
    a streamer); these cases check that each applied write's event reaches the streamer as
    the outbox relay would have sent it, and that nothing else does.
    Workflow names are unique per case, so a streamer shared between cases works too.
    ``recv_timeout`` bounds every wait for an event.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    recv_timeout: ClassVar[float] = WAIT_TIMEOUT
    """Seconds a case waits for an expected event before failing."""

    @pytest_asyncio.fixture
    async def store_and_streamer(self) -> AsyncIterator[StoreAndStreamer]:
        """A fresh publishing store and its streamer for one case: override this fixture."""
        raise NotImplementedError(
            "override the `store_and_streamer` fixture to yield a StoreAndStreamer"
        )
        yield  # pragma: no cover

    @pytest_asyncio.fixture
    async def endpoints(self, store_and_streamer: StoreAndStreamer) -> AsyncIterator[Endpoints]:
        """Receivers of one case on the published-to streamer, closed when it ends."""
        endpoints = Endpoints(store_and_streamer.streamer)
        try:
            yield endpoints
        finally:
            await endpoints.aclose()

    async def _published(self, endpoints: Endpoints, topic: str, count: int) -> list[Event]:
        """The first ``count`` events of ``topic`` (read from its start)."""
        receiver = await endpoints.receiver(topic, new_name("reader"))
        events: list[Event] = []

        async def collect() -> None:
            while len(events) < count:
                events.extend(await receiver.recv(count - len(events)))

        await within(collect(), self.recv_timeout, f"{count} events on {topic!r}")
        return events

    @staticmethod
    def _as_relayed(write: RecordWrite) -> tuple[str, int, dict[str, str]]:
        """What the outbox relay sends for ``write``: foreign ID = run ID, type, headers."""
        return (write.outbox.run_id, write.outbox.type, dict(write.outbox.headers))

    @staticmethod
    def _as_received(event: Event) -> tuple[str, int, dict[str, str]]:
        return (event.foreign_id, event.type, dict(event.headers))

    async def test_store_publishes_events(self, store_and_streamer: StoreAndStreamer) -> None:
        assert isinstance(store_and_streamer.store, PublishesEvents)
        assert isinstance(store_and_streamer.store, RecordStore)

    async def test_publishes_to_is_the_streamer_it_publishes_to(
        self, store_and_streamer: StoreAndStreamer
    ) -> None:
        store = store_and_streamer.store
        assert isinstance(store, PublishesEvents)

        assert store.publishes_to is store_and_streamer.streamer

    async def test_each_write_puts_its_event_on_its_topic_as_the_relay_would_send_it(
        self, store_and_streamer: StoreAndStreamer, endpoints: Endpoints
    ) -> None:
        # Given an insert and an update of one run (their events go to different topics)
        store = store_and_streamer.store
        record = dummy_record(new_name("wf"))
        first = insert(record)
        second = update(record, status=Status.MIDDLE)
        assert first.outbox.topic != second.outbox.topic

        # When both are stored
        await store.store(first)
        await store.store(second)

        # Then each topic from the Header.TOPIC header holds its write's event, with the
        # run ID as foreign ID, the outbox event's type and all its headers
        (on_first,) = await self._published(endpoints, first.outbox.topic, 1)
        (on_second,) = await self._published(endpoints, second.outbox.topic, 1)
        assert self._as_received(on_first) == self._as_relayed(first)
        assert self._as_received(on_second) == self._as_relayed(second)

    async def test_a_published_write_leaves_no_outbox_event(
        self, store_and_streamer: StoreAndStreamer
    ) -> None:
        # Given a store that publishes its events
        store = store_and_streamer.store
        workflow = new_name("wf")
        record = dummy_record(workflow)

        # When writes are stored, one by one and in a batch
        await store.store(insert(record))
        others = [insert(dummy_record(workflow, foreign_id=f"fid-{i}")) for i in range(2)]
        outcomes = await store.store_many([update(record, status=Status.MIDDLE), *others])

        # Then they were applied, and nothing waits in the outbox for a relay
        assert list(outcomes) == [None, None, None]
        assert list(await store.list_outbox_events(workflow, 1000)) == []
        if isinstance(store, ReportsOutbox):
            assert store.outbox_size() == 0

    async def test_store_many_publishes_the_applied_writes_in_order_and_no_rejected_one(
        self, store_and_streamer: StoreAndStreamer, endpoints: Endpoints
    ) -> None:
        # Given a run whose foreign ID is busy
        store = store_and_streamer.store
        workflow = new_name("wf")
        busy = insert(dummy_record(workflow, foreign_id="busy"))
        await store.store(busy)
        # (every write below starts a run at STARTED: their events share one topic)
        fresh = insert(dummy_record(workflow, foreign_id="fresh"))
        blocked = insert(dummy_record(workflow, foreign_id="busy"))
        also_fresh = insert(dummy_record(workflow, foreign_id="also fresh"))
        assert len({w.outbox.topic for w in (busy, fresh, blocked, also_fresh)}) == 1

        # When a batch with a rejected write in the middle is stored, then one more write
        outcomes = await store.store_many([fresh, blocked, also_fresh])
        last = insert(dummy_record(workflow, foreign_id="last"))
        await store.store(last)

        # Then the topic holds the applied writes' events, in order, up to the last one
        assert outcomes[0] is None
        assert isinstance(outcomes[1], WorkflowInProgress)
        assert outcomes[2] is None
        events = await self._published(endpoints, busy.outbox.topic, 4)
        assert [self._as_received(e) for e in events] == [
            self._as_relayed(w) for w in (busy, fresh, also_fresh, last)
        ]

    async def test_a_rejected_write_publishes_nothing(
        self, store_and_streamer: StoreAndStreamer, endpoints: Endpoints
    ) -> None:
        # Given a run at version 2
        store = store_and_streamer.store
        record = dummy_record(new_name("wf"))
        await store.store(insert(record))
        current = update(record, status=Status.MIDDLE)
        await store.store(current)

        # When a write expecting version 1 is refused, and then a valid one is stored
        stale = update(record, status=Status.MIDDLE, object=b'{"stale":true}')
        with pytest.raises(VersionConflict):
            await store.store(stale)
        valid = update(current.record, status=Status.MIDDLE, object=b'{"valid":true}')
        await store.store(valid)

        # Then the MIDDLE topic holds the applied writes' events only
        assert stale.outbox.topic == valid.outbox.topic == current.outbox.topic
        events = await self._published(endpoints, current.outbox.topic, 2)
        assert [self._as_received(e) for e in events] == [
            self._as_relayed(current),
            self._as_relayed(valid),
        ]


# --------------------------------------------------------------------------- store capabilities


class _StoreCapabilitySuite:
    """The ``store`` fixture and bounded waits shared by the record-store capabilities."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    wait_timeout: ClassVar[float] = WAIT_TIMEOUT
    """Seconds a case waits for a wake-up before failing."""

    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[RecordStore]:
        """A fresh, empty store for one case: override this fixture."""
        raise NotImplementedError("override the `store` fixture to yield a fresh RecordStore")
        yield  # pragma: no cover


def _assert_records_equal(got: Sequence[Record], want: Sequence[Record]) -> None:
    assert [r.version for r in got] == [r.version for r in want], "versions differ"
    for g, w in zip(got, want, strict=True):
        assert_record_equal(g, w)


class KeepsSnapshotsSuite(_StoreCapabilitySuite):
    """Cases for record stores that keep every version of a run (``KeepsSnapshots``).

    Override the ``store`` fixture as for ``RecordStoreSuite`` (the same store passes
    both). ``conveyor.testing.require`` relies on these: it finds a status a run has
    already passed in its snapshots.
    """

    def _snapshots(self, store: RecordStore, record: Record) -> Sequence[Record]:
        assert isinstance(store, KeepsSnapshots), f"{type(store).__name__} keeps no snapshots"
        return store.snapshots(record.workflow_name, record.foreign_id, record.run_id)

    async def test_store_keeps_snapshots(self, store: RecordStore) -> None:
        assert isinstance(store, KeepsSnapshots)

    async def test_snapshots_hold_every_applied_version_oldest_first(
        self, store: RecordStore
    ) -> None:
        # Given a run written three times
        record = dummy_record()
        middle = update(record, status=Status.MIDDLE)
        end = update(middle.record, status=Status.END, run_state=RunState.COMPLETED)

        # When each write is applied
        await store.store(insert(record))
        await store.store(middle)
        await store.store(end)

        # Then its snapshots are the three versions, in the order written
        _assert_records_equal(self._snapshots(store, record), [record, middle.record, end.record])

    async def test_writes_applied_by_store_many_are_snapshotted(self, store: RecordStore) -> None:
        # Given a stored run
        record = dummy_record()
        await store.store(insert(record))
        other = dummy_record(foreign_id="someone else")
        middle = update(record, status=Status.MIDDLE)

        # When a batch updates it and inserts another run
        outcomes = await store.store_many([middle, insert(other)])

        # Then both runs' snapshots hold every version
        assert list(outcomes) == [None, None]
        _assert_records_equal(self._snapshots(store, record), [record, middle.record])
        _assert_records_equal(self._snapshots(store, other), [other])

    async def test_a_rejected_write_leaves_no_snapshot(self, store: RecordStore) -> None:
        # Given a run at version 2
        record = dummy_record()
        await store.store(insert(record))
        current = update(record, status=Status.MIDDLE)
        await store.store(current)

        # When a compare-and-set write expecting version 1 is refused, alone and in a batch
        with pytest.raises(VersionConflict):
            await store.store(update(record, status=Status.END))
        (outcome,) = await store.store_many([update(record, status=Status.END)])
        assert isinstance(outcome, VersionConflict)
        # ... and so is a second active run of its foreign ID
        blocked = dummy_record()
        with pytest.raises(WorkflowInProgress):
            await store.store(insert(blocked))

        # Then the snapshots hold the applied versions only, and none of the refused run
        _assert_records_equal(self._snapshots(store, record), [record, current.record])
        assert list(self._snapshots(store, blocked)) == []

    async def test_snapshots_are_kept_per_run(self, store: RecordStore) -> None:
        # Given a finished run and a newer run of the same foreign ID
        first = dummy_record()
        await store.store(insert(first))
        first_done = update(first, run_state=RunState.COMPLETED)
        await store.store(first_done)
        second = dummy_record()
        await store.store(insert(second))

        # Then each run's snapshots hold its own versions only
        _assert_records_equal(self._snapshots(store, first), [first, first_done.record])
        _assert_records_equal(self._snapshots(store, second), [second])

    async def test_snapshots_of_an_unknown_run_are_empty(self, store: RecordStore) -> None:
        # Given a stored run
        record = dummy_record()
        await store.store(insert(record))
        assert isinstance(store, KeepsSnapshots)

        # Then a run ID never stored, or the run under another workflow or foreign ID,
        # has no snapshots
        assert list(store.snapshots(WORKFLOW, FOREIGN_ID, "no-such-run-id")) == []
        assert list(store.snapshots(SECOND_WORKFLOW, FOREIGN_ID, record.run_id)) == []
        assert list(store.snapshots(WORKFLOW, "someone else", record.run_id)) == []


class NotifiesChangesSuite(_StoreCapabilitySuite):
    """Cases for record stores that wake waiters on every write (``NotifiesChanges``).

    Override the ``store`` fixture as for ``RecordStoreSuite``. The test helpers
    (``conveyor.testing.wait_for`` and ``require``) wait on these wake-ups instead of
    polling. No case waits a fixed time: a waiter woken by a write is given no timeout,
    so only the write can end it before ``wait_timeout`` fails the case.
    """

    def _notifying(self, store: RecordStore) -> NotifiesChanges:
        assert isinstance(store, NotifiesChanges), f"{type(store).__name__} notifies nothing"
        return store

    async def _waiting(self, store: RecordStore) -> asyncio.Task[None]:
        """A waiter with no timeout that has started waiting."""
        waiter = asyncio.create_task(self._notifying(store).wait_for_change(None))
        await _yield_to_others()
        assert not waiter.done(), "wait_for_change returned before any write"
        return waiter

    async def test_store_notifies_changes(self, store: RecordStore) -> None:
        assert isinstance(store, NotifiesChanges)

    async def test_a_waiter_returns_after_a_write(self, store: RecordStore) -> None:
        # Given a waiter
        waiter = await self._waiting(store)
        try:
            # When a write is applied
            await store.store(insert(dummy_record()))

            # Then the waiter returns
            await within(waiter, self.wait_timeout, "wait_for_change to return after a write")
        finally:
            waiter.cancel()

    async def test_a_waiter_returns_after_a_store_many(self, store: RecordStore) -> None:
        # Given a waiter
        waiter = await self._waiting(store)
        try:
            # When a batch of writes is applied
            await store.store_many([insert(dummy_record(foreign_id=f"f-{i}")) for i in range(2)])

            # Then the waiter returns
            await within(waiter, self.wait_timeout, "wait_for_change to return after a batch")
        finally:
            waiter.cancel()

    async def test_every_waiter_returns_after_one_write(self, store: RecordStore) -> None:
        # Given three waiters
        waiters = [await self._waiting(store) for _ in range(3)]
        try:
            # When one write is applied
            await store.store(insert(dummy_record()))

            # Then all of them return
            await within(asyncio.gather(*waiters), self.wait_timeout, "every waiter to return")
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def test_a_waiter_returns_at_its_timeout_without_a_write(
        self, store: RecordStore
    ) -> None:
        # Given no write at all, a waiter with a tiny timeout returns (and raises nothing)
        await within(
            self._notifying(store).wait_for_change(0.01),
            self.wait_timeout,
            "wait_for_change to return at its timeout",
        )


class ReportsOutboxSuite(_StoreCapabilitySuite):
    """Cases for record stores that count their outbox without I/O (``ReportsOutbox``).

    Override the ``store`` fixture as for ``RecordStoreSuite``. ``run_until_idle`` is not
    idle while the count is positive, so it must fall to ``0`` once every outbox event is
    deleted.
    """

    def _size(self, store: RecordStore) -> int:
        assert isinstance(store, ReportsOutbox), f"{type(store).__name__} reports no outbox"
        size = store.outbox_size()
        assert isinstance(size, int), f"outbox_size() returned {size!r}, not an int"
        return size

    async def test_store_reports_outbox(self, store: RecordStore) -> None:
        assert isinstance(store, ReportsOutbox)

    async def test_an_empty_store_reports_zero(self, store: RecordStore) -> None:
        assert self._size(store) == 0

    async def test_each_applied_write_of_any_workflow_counts_once(self, store: RecordStore) -> None:
        # Given a run written twice in one workflow, and one run in another
        record = dummy_record()
        await store.store(insert(record))
        assert self._size(store) == 1
        await store.store(update(record, status=Status.MIDDLE))
        assert self._size(store) == 2

        # When a batch inserts a run of the second workflow
        await store.store_many([insert(dummy_record(SECOND_WORKFLOW))])

        # Then every write's outbox event counts
        assert self._size(store) == 3

    async def test_a_rejected_write_adds_nothing(self, store: RecordStore) -> None:
        # Given one applied write
        record = dummy_record()
        await store.store(insert(record))

        # When writes are refused (a version not stored, a second active run)
        ahead = update(record, status=Status.MIDDLE)
        with pytest.raises(VersionConflict):
            await store.store(RecordWrite(ahead.record, ahead.outbox, expected_version=5))
        with pytest.raises(WorkflowInProgress):
            await store.store(insert(dummy_record()))

        # Then only the applied write counts
        assert self._size(store) == 1

    async def test_deleted_outbox_events_no_longer_count(self, store: RecordStore) -> None:
        # Given three outbox events in two workflows
        writes = [
            insert(dummy_record(foreign_id="a")),
            insert(dummy_record(foreign_id="b")),
            insert(dummy_record(SECOND_WORKFLOW)),
        ]
        for write in writes:
            await store.store(write)
        assert self._size(store) == 3

        # When one is deleted, then the others (with an unknown ID among them)
        await store.delete_outbox_events([writes[0].outbox.id])
        assert self._size(store) == 2
        await store.delete_outbox_events(
            ["outbox-id-unknown", writes[1].outbox.id, writes[2].outbox.id]
        )

        # Then nothing counts: the outbox is empty
        assert self._size(store) == 0
        assert list(await store.list_outbox_events(WORKFLOW, 1000)) == []
