"""The cursor every receiver keeps: it advances only over an unbroken run of acks."""

from __future__ import annotations

import pytest

from conveyor.abc.kit import AckTracker, NotHandedOut


def test_the_cursor_waits_for_the_oldest_unacknowledged_position() -> None:
    acks = AckTracker(10)
    acks.hand_out([12, 15, 16])  # IDs may have gaps

    assert acks.ack(15) is False
    assert acks.committed == 10
    assert acks.ack(12) is True
    assert acks.committed == 15
    assert acks.ack(16) is True
    assert acks.committed == 16


def test_repeated_and_old_acks_are_ignored_and_strangers_refused() -> None:
    acks = AckTracker(0)
    acks.hand_out(range(1, 4))
    assert acks.ack(1) is True

    assert acks.ack(1) is False  # twice
    assert acks.ack(0) is False  # before this receiver's start
    with pytest.raises(NotHandedOut):
        acks.ack(7)  # never handed out
    assert acks.committed == 1


def test_a_failed_event_holds_back_everything_after_it() -> None:
    acks = AckTracker(0)
    acks.hand_out(range(1, 101))
    for position in range(2, 101):
        acks.ack(position)

    assert acks.committed == 0  # position 1 is redelivered, with the rest after it
    assert acks.ack(1) is True
    assert acks.committed == 100
