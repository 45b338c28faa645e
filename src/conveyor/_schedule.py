"""Cron schedules for ``Workflow.schedule``: standard cron via croniter, plus ``@every``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import croniter

__all__ = ["Schedule", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> timedelta:
    """A Go-style duration (``1h30m``, ``90s``, ``500ms``) as a ``timedelta``."""
    text = text.strip()
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"invalid duration {text!r} (examples: 90s, 15m, 1h30m)")
    return timedelta(seconds=total)


class Schedule:
    """When a schedule fires: ``next_after(t)`` is the first slot strictly after ``t``.

    Accepts standard 5-field cron (ranges, lists, steps, names), descriptors such as
    ``@hourly``/``@daily``/``@weekly``/``@monthly``/``@yearly``, and ``@every <duration>``.
    Cron fields are read in ``tz`` (default UTC), so ``0 9 * * *`` with a European time zone
    follows its daylight-saving changes.
    """

    def __init__(self, spec: str, tz: tzinfo = UTC) -> None:
        self.spec = spec.strip()
        self.tz = tz
        self._every: timedelta | None = None
        if self.spec.startswith("@every"):
            self._every = parse_duration(self.spec[len("@every") :])
            if self._every <= timedelta(0):
                raise ValueError(f"@every needs a positive duration: {spec!r}")
        elif not croniter.is_valid(self.spec):
            raise ValueError(f"invalid cron spec {spec!r}")

    def next_after(self, after: datetime) -> datetime:
        if after.tzinfo is None:
            raise ValueError("schedules need timezone-aware datetimes")
        if self._every is not None:
            return after + self._every
        local = after.astimezone(self.tz)
        nxt: datetime = croniter(self.spec, local).get_next(datetime)
        return nxt.astimezone(after.tzinfo)
