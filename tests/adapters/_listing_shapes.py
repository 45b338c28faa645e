"""The run list's query shapes (what the web UI, its JSON API and the CLI ask for), for the
plan checks of the SQLite and PostgreSQL stores, and rows to load before checking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.abc import Record, RunQuery, RunState
from conveyor.adapters._listing import Key, to_us
from conveyor.adaptertest import dummy_record

__all__ = ["AFTER", "PREFIX_SHAPES", "RESOLVE_LIMIT", "SHAPES", "rows"]

_T0 = datetime(2024, 1, 1, tzinfo=UTC)
_STATES = [RunState.RUNNING, RunState.COMPLETED, RunState.PAUSED, RunState.CANCELLED]

SHAPES: dict[str, RunQuery] = {
    "newest-first": RunQuery(),
    "oldest-first": RunQuery(newest_first=False),
    "status": RunQuery(statuses=(2,)),
    "statuses": RunQuery(statuses=(1, 2)),
    "run-state": RunQuery(run_states=(RunState.RUNNING,)),
    "run-states": RunQuery(run_states=(RunState.RUNNING, RunState.PAUSED)),
    "foreign-id": RunQuery(foreign_id="order-7"),
    "foreign-id-prefix": RunQuery(foreign_id_prefix="order-1"),
    "created-range": RunQuery(
        created_after=_T0 + timedelta(hours=1), created_before=_T0 + timedelta(hours=2)
    ),
    "status-and-range": RunQuery(statuses=(3,), created_after=_T0 + timedelta(hours=1)),
    "run-state-oldest-first": RunQuery(run_states=(RunState.PAUSED,), newest_first=False),
    "run-id-prefix": RunQuery(run_id_prefix="run-00012"),
}
PREFIX_SHAPES = {"foreign-id-prefix": "foreign_id", "run-id-prefix": "run_id"}
"""Shapes whose index is a range of a column's prefix (by shape): its matches are read by
the index and then put in creation order (a sort of the prefix's matches, not of the
table). ``run-id-prefix`` resolves a short run ID (a page of two, see ``RESOLVE_LIMIT``)."""

RESOLVE_LIMIT = 2
"""The page size that resolves a run ID prefix: one run, or two that make it ambiguous."""

AFTER = Key(to_us(_T0 + timedelta(minutes=90)), "run-000300")
"""A cursor's key in the middle of ``rows()``."""


def rows(count: int = 400) -> list[Record]:
    """Runs of two workflows, four statuses and run states, distinct foreign IDs."""
    return [
        dummy_record(
            "wf" if i % 3 else "other",
            foreign_id=f"order-{i}",
            run_id=f"run-{i:06d}",
            status=1 + i % 4,
            run_state=_STATES[i % 4],
            created_at=_T0 + timedelta(seconds=17 * i),
        )
        for i in range(count)
    ]
