"""``EventSenderBase``: the part of an ``EventSender`` that every adapter writes the same.

An adapter's sender subclasses it and implements only ``deliver`` (append a non-empty
batch to the topic); the base provides ``send`` (a batch of one), the check that the
sender is open (``AdapterError`` after ``close``) and an idempotent ``close``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from .._errors import AdapterError
from .._protocols import OutgoingEvent

__all__ = ["EventSenderBase"]


class EventSenderBase(ABC):
    """An ``EventSender`` for one topic, minus the storage: subclasses implement ``deliver``.

    ``send_many`` of an empty sequence writes nothing; every call after ``close()`` raises
    ``AdapterError``. Subclasses that hold resources override ``close`` and call
    ``super().close()``.
    """

    __slots__ = ("_closed", "topic")

    def __init__(self, topic: str) -> None:
        self.topic: str = topic
        """The topic this sender appends to."""
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    async def send(self, foreign_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        """Append one event. Raises ``AdapterError`` if closed (or if ``deliver`` does)."""
        await self.send_many((OutgoingEvent(foreign_id, event_type, headers),))

    async def send_many(self, events: Sequence[OutgoingEvent]) -> None:
        """Append ``events`` in order, all or none (as ``deliver`` guarantees).

        Raises ``AdapterError`` if the sender is closed, or whatever ``deliver`` raises.
        """
        if self._closed:
            raise AdapterError(f"sender for topic {self.topic!r} is closed")
        if events:
            await self.deliver(events)

    @abstractmethod
    async def deliver(self, events: Sequence[OutgoingEvent]) -> None:
        """Append a non-empty batch to ``topic`` (the adapter's part; callers use
        ``send_many``). Raises ``AdapterError`` (never a driver's error)."""

    async def close(self) -> None:
        """Refuse further sends. Idempotent."""
        self._closed = True
