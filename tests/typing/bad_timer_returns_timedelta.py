"""A timer returning a ``timedelta``: timers return when (``datetime | None``)."""

from datetime import datetime, timedelta

from _typing_model import Doc, Status, builder

from conveyor import Run


def in_a_day(run: Run[Doc, Status], now: datetime) -> timedelta:
    return timedelta(days=1)


def expire(run: Run[Doc, Status], now: datetime) -> Status:
    return Status.PUBLISHED


builder().add_timeout(Status.REVIEWED, in_a_day, expire, Status.PUBLISHED)  # E: arg-type
