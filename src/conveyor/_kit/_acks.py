"""``AckTracker``: a receiver's cursor advances only over an unbroken run of acks.

Every receiver hands out events in increasing position (an event ID, or a position in a
log) and may have them acknowledged in any order. The cursor is the last position up to
which *every* handed-out event is acknowledged, so an event that is never acknowledged
(its handler failed) holds the cursor back and is delivered again to the next receiver.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["AckTracker", "NotHandedOut"]


class NotHandedOut(LookupError):
    """``ack`` of a position this receiver did not hand out (or has already passed)."""


class AckTracker:
    """Positions handed out and acknowledged; ``committed`` is the cursor (inclusive)."""

    __slots__ = ("_acked", "_handed", "_order", "committed")

    def __init__(self, committed: int) -> None:
        self.committed: int = committed
        """Every handed-out position up to this one is acknowledged."""
        self._order: deque[int] = deque()  # handed out, not yet passed, increasing
        self._handed: set[int] = set()  # the same, for membership
        self._acked: set[int] = set()  # those of them acknowledged

    def hand_out(self, positions: Iterable[int]) -> None:
        """Record positions handed out (each greater than every earlier one)."""
        for position in positions:
            self._order.append(position)
            self._handed.add(position)

    def ack(self, position: int) -> bool:
        """Acknowledge ``position``; whether ``committed`` moved.

        A position at or below ``committed`` is ignored (acknowledged twice, or before a
        reopen); one never handed out raises ``NotHandedOut``.
        """
        if position <= self.committed:
            return False
        if position not in self._handed:
            raise NotHandedOut(position)
        acked, order = self._acked, self._order
        acked.add(position)
        committed = self.committed
        while order and order[0] in acked:
            committed = order.popleft()
            acked.discard(committed)
            self._handed.discard(committed)
        if committed == self.committed:
            return False
        self.committed = committed
        return True
