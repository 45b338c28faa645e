"""A timeout function returning a ``datetime`` (a timer in the function's place)."""

from datetime import datetime, timedelta

from _typing_model import Doc, Status, builder

from conveyor import Run


def in_a_day(run: Run[Doc, Status], now: datetime) -> datetime:
    return now + timedelta(days=1)


builder().add_timeout(Status.REVIEWED, in_a_day, in_a_day, Status.PUBLISHED)  # E: arg-type
