"""Timer helpers for ``Builder.add_timeout``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

__all__ = ["duration_timer", "time_timer"]

Timer = Callable[[Any, datetime], datetime | None]


def duration_timer(duration: float | timedelta) -> Timer:
    """A timer that expires ``duration`` (seconds or a timedelta) after the run arrives."""
    delta = duration if isinstance(duration, timedelta) else timedelta(seconds=duration)
    if delta < timedelta(0):
        raise ValueError("a timeout duration must not be negative")

    def timer(run: Any, now: datetime) -> datetime:
        return now + delta

    return timer


def time_timer(when: datetime) -> Timer:
    """A timer that expires at the fixed time ``when`` (timezone-aware)."""
    if when.tzinfo is None:
        raise ValueError("time_timer needs a timezone-aware datetime")

    def timer(run: Any, now: datetime) -> datetime:
        return when

    return timer
