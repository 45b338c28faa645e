"""Runs a consumer attempts again: each alone, at its own time, while the others go on."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from .._capabilities import Failure
from .._event import Event, Header

__all__ = ["Retries", "retry_event"]


class Retries:
    """Events to handle again, each due at a time on the monotonic clock (one per run)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, tuple[float, Event]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def add(self, event: Event, delay: float) -> None:
        """Handle ``event`` again in ``delay`` seconds (replacing its run's earlier one)."""
        when = time.monotonic() + max(0.0, delay)
        self._due[event.foreign_id] = (when, event)
        heapq.heappush(self._heap, (when, next(self._seq), event.foreign_id))

    async def due(self) -> Sequence[Event]:
        """Wait for the earliest entry's time; return every entry due by then."""
        while self._heap:
            when, _, run_id = self._heap[0]
            entry = self._due.get(run_id)
            if entry is None or entry[0] != when:
                heapq.heappop(self._heap)  # replaced or taken
                continue
            delay = when - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            break
        else:
            await asyncio.Future()  # nothing to retry: wait to be cancelled
        now = time.monotonic()
        events: list[Event] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, run_id = heapq.heappop(self._heap)
            entry = self._due.get(run_id)
            if entry is not None and entry[0] == when:
                del self._due[run_id]
                events.append(entry[1])
        return events


def retry_event(failure: Failure, status: int) -> tuple[Event, float]:
    """The event that makes a consumer attempt ``failure``'s run again (as the event of
    that version would), and the seconds until the attempt is due."""
    headers: dict[str, str] = {
        Header.WORKFLOW_NAME: failure.workflow_name,
        Header.RUN_ID: failure.run_id,
        Header.RECORD_VERSION: str(failure.version),
    }
    event = Event(0, failure.run_id, status, headers, failure.failed_at)
    due = failure.next_attempt_at
    delay = 0.0 if due is None else (due - datetime.now(UTC)).total_seconds()
    return event, delay
