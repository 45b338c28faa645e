"""The ``ReportsPending`` conformance suite: receivers that tell whether they are behind.

Run it beside ``EventStreamerSuite`` with the same ``streamer`` fixture. Its first case
checks the claim (``isinstance``); the others the promise on ``conveyor.abc.ReportsPending``.
A receiver over a partitioned log (``ReadsPartitions``) hands events out in send order per
partition; order is checked per partition for it (``assert_in_log_order``).
"""

from __future__ import annotations

from .._capabilities import (
    ReportsPending,
)
from .._event import Event
from .._protocols import (
    EventReceiver,
    OutgoingEvent,
)
from ._event_streamer import Endpoints, StreamerCases, _headers
from ._fixtures import (
    foreign_ids,
    new_name,
)
from ._partitions import assert_in_log_order

__all__ = ["ReportsPendingSuite"]


def _pending_of(receiver: EventReceiver) -> int:
    assert isinstance(receiver, ReportsPending), (
        f"{type(receiver).__name__} has no pending(): it does not report pending events"
    )
    pending = receiver.pending()
    assert isinstance(pending, int), f"pending() returned {pending!r}, not an int"
    assert pending >= 0, f"pending() returned {pending}"
    return pending


class ReportsPendingSuite(StreamerCases):
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
        assert_in_log_order(receiver, handed_out, _foreign_id, ["0", "1", "2"])
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
        assert_in_log_order(receiver, handed_out, _foreign_id, ["a", "b"])
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
        assert_in_log_order(reopened, again, _foreign_id, ["0", "1"])
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


def _foreign_id(event: Event) -> str:
    return event.foreign_id
