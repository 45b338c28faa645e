"""The ``PublishesEvents`` conformance suite: stores whose writes append their own events.

Its fixture ``store_and_streamer`` yields a ``StoreAndStreamer``: the store and the streamer it
publishes to. The first case checks the claim (``isinstance``); the others that each applied
write's event is on the streamer exactly as the outbox relay would send it, and no outbox
event is left behind (the promise on ``conveyor.abc.PublishesEvents``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar, NamedTuple

import pytest
import pytest_asyncio

from .._capabilities import (
    PublishesEvents,
    ReportsOutbox,
)
from .._errors import VersionConflict, WorkflowInProgress
from .._event import Event
from .._protocols import (
    EventStreamer,
    RecordStore,
    RecordWrite,
)
from ._event_streamer import Endpoints
from ._fixtures import (
    WAIT_TIMEOUT,
    Status,
    dummy_record,
    insert,
    new_name,
    update,
    within,
)

__all__ = ["PublishesEventsSuite", "StoreAndStreamer"]


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
