"""``EventSenderBase``: an adapter implements ``deliver``; the base does the rest alike."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from conveyor.abc import AdapterError, OutgoingEvent
from conveyor.abc.kit import EventSenderBase


class _Recording(EventSenderBase):
    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.batches: list[list[OutgoingEvent]] = []

    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        self.batches.append(list(events))


async def test_send_delivers_a_batch_of_one() -> None:
    sender = _Recording("orders")
    await sender.send("fid", 3, {"k": "v"})
    assert sender.batches == [[OutgoingEvent("fid", 3, {"k": "v"})]]


async def test_send_many_delivers_its_events_as_one_batch_and_nothing_when_empty() -> None:
    sender = _Recording("orders")
    events = [OutgoingEvent("a", 1, {}), OutgoingEvent("b", 2, {})]

    await sender.send_many([])
    await sender.send_many(events)

    assert sender.batches == [events]  # the empty call reached no storage


async def test_a_closed_sender_refuses_every_send_and_closes_again_quietly() -> None:
    # Given a closed sender
    sender = _Recording("orders")
    await sender.close()
    await sender.close()  # idempotent

    # Then sends raise the adapter error naming the topic, and deliver nothing
    with pytest.raises(AdapterError, match="'orders' is closed"):
        await sender.send("fid", 1, {})
    with pytest.raises(AdapterError, match="'orders' is closed"):
        await sender.send_many([OutgoingEvent("fid", 1, {})])
    assert sender.closed
    assert sender.batches == []


def test_a_sender_without_deliver_cannot_be_built() -> None:
    class Incomplete(EventSenderBase):
        pass

    with pytest.raises(TypeError, match="deliver"):
        Incomplete("orders")  # type: ignore[abstract]
