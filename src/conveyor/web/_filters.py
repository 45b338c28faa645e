"""A run filter as people type it (names or numbers, ISO times) made into a ``RunQuery``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from .._capabilities import RunQuery
from .._errors import WorkflowError
from .._operator import Operator
from .._runstate import RunState

__all__ = ["BadFilter", "FilterText", "RUN_STATES", "RunStateName", "parse_time", "run_state"]

RunStateName = Literal[
    "initiated",
    "running",
    "paused",
    "cancelled",
    "completed",
    "data_deleted",
    "requested_data_deleted",
]
"""A run state as the API names it (its OpenAPI enum)."""

RUN_STATES: dict[str, RunState] = {
    str(s).lower().replace(" ", "_"): s for s in RunState if s is not RunState.UNKNOWN
}
"""Run states by the names the API takes: ``running``, ``data_deleted``, ..."""
assert tuple(RUN_STATES) == get_args(RunStateName)


class BadFilter(WorkflowError, ValueError):
    """A filter value that means nothing (an unknown run state, a time that is not ISO)."""


def run_state(text: str) -> RunState:
    """A run state by name (``Running``, ``running``, ``data_deleted``) or number."""
    key = text.strip().lower().replace(" ", "_").replace("-", "_")
    if key.isdigit() and int(key) in set(RunState) - {RunState.UNKNOWN}:
        return RunState(int(key))
    found = RUN_STATES.get(key)
    if found is None:
        raise BadFilter(f"unknown run state {text!r}: one of {', '.join(RUN_STATES)}")
    return found


def parse_time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone); ``None`` for an empty value."""
    if text is None or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadFilter(f"{name} is not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _split(values: Sequence[str]) -> list[str]:
    """Repeated and comma-separated values alike: ``a,b`` and ``a&b``."""
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


@dataclass(frozen=True, slots=True)
class FilterText:
    """The filter as given, kept to fill the UI's form and links again."""

    workflow: str = ""
    foreign_id: str = ""
    foreign_id_prefix: str = ""
    status: tuple[str, ...] = ()
    run_state: tuple[str, ...] = ()
    created_after: str = ""
    created_before: str = ""

    @classmethod
    def of(
        cls,
        *,
        workflow: str | None = None,
        foreign_id: str | None = None,
        foreign_id_prefix: str | None = None,
        status: Sequence[str] = (),
        run_state: Sequence[str] = (),
        created_after: str | datetime | None = None,
        created_before: str | datetime | None = None,
    ) -> FilterText:
        def text(value: str | datetime | None) -> str:
            if isinstance(value, datetime):
                return value.isoformat()
            return (value or "").strip()

        return cls(
            workflow=text(workflow),
            foreign_id=text(foreign_id),
            foreign_id_prefix=text(foreign_id_prefix),
            status=tuple(_split(status)),
            run_state=tuple(_split(run_state)),
            created_after=text(created_after),
            created_before=text(created_before),
        )

    def pairs(self) -> list[tuple[str, str]]:
        """The filter as query-string pairs (empty fields left out)."""
        out = [
            (k, v)
            for k, v in (
                ("workflow", self.workflow),
                ("foreign_id", self.foreign_id),
                ("foreign_id_prefix", self.foreign_id_prefix),
                ("created_after", self.created_after),
                ("created_before", self.created_before),
            )
            if v
        ]
        out += [("status", s) for s in self.status]
        out += [("run_state", s) for s in self.run_state]
        return out

    def is_empty(self) -> bool:
        return not self.pairs()

    async def query(self, operator: Operator, *, newest_first: bool = True) -> RunQuery:
        """The ``RunQuery`` this filter means (raises ``BadFilter``/``UnknownStatus``)."""
        return RunQuery(
            workflow_name=self.workflow,
            foreign_id=self.foreign_id or None,
            foreign_id_prefix=self.foreign_id_prefix or None,
            statuses=await operator.statuses(self.status, self.workflow),
            run_states=tuple(run_state(s) for s in self.run_state),
            created_after=parse_time(self.created_after, "created_after"),
            created_before=parse_time(self.created_before, "created_before"),
            newest_first=newest_first,
        )
