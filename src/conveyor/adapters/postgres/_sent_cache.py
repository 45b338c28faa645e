"""``SentCache``: the latest events this process sent to a topic, for its own receivers.

A topic's IDs have no gaps and become visible in order (see ``PostgresEventStreamer``),
so receivers in the sending process can take what it just committed without a query.
"""

from __future__ import annotations

from ..._event import Event

__all__ = ["SentCache"]


class SentCache:
    """The latest events this process sent to one topic, with contiguous IDs.

    A topic's IDs have no gaps and become visible in order, so a run of contiguous IDs
    returned by our own committed sends is exactly what the table holds for those IDs:
    receivers here can take them without a query. ``sends`` counts the sends (each fires
    the topic's signal once), which lets a receiver tell whether every notification since
    its last read came from this process (then the cache has everything new).
    """

    __slots__ = ("events", "first", "gap_at", "readers", "sends")

    LIMIT = 512

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.first: int = 0  # ID of events[0]
        self.sends: int = 0
        self.gap_at: int = 0  # the last send whose events were not kept
        self.readers: int = 0  # open receivers and tails of the topic in this process

    @property
    def last(self) -> int:
        """The highest ID known here (0 if none)."""
        return self.first + len(self.events) - 1 if self.events else 0

    def add(self, events: list[Event]) -> None:
        self.sends += 1
        if not self.readers:  # nobody here would read them: keep nothing
            self.events = []
            self.gap_at = self.sends
            return
        for event in events:
            if not self.events or event.id != self.last + 1:
                # Someone else sent in between (or a duplicate was dropped): start again.
                self.events = []
                self.first = event.id
            self.events.append(event)
        excess = len(self.events) - 2 * self.LIMIT
        if excess > 0:  # trim in bulk, so appends stay cheap
            excess += self.LIMIT
            del self.events[:excess]
            self.first += excess

    def after(self, position: int, limit: int) -> list[Event]:
        """Up to ``limit`` cached events after ``position`` (none unless the next is here)."""
        start = position + 1 - self.first
        if start < 0 or start >= len(self.events):
            return []
        return self.events[start : start + limit]
