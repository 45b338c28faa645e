"""The lifecycle of a run, independent of the user's statuses."""

from __future__ import annotations

import enum

__all__ = ["RunState", "State"]


class RunState(enum.IntEnum):
    """Where a run is in its lifecycle (the original's values, wire-compatible)."""

    UNKNOWN = 0
    INITIATED = 1
    RUNNING = 2
    PAUSED = 3
    CANCELLED = 4
    COMPLETED = 5
    DATA_DELETED = 6
    REQUESTED_DATA_DELETED = 7

    def __str__(self) -> str:
        return _NAMES[self]

    def valid(self) -> bool:
        """True for every state but UNKNOWN."""
        return self is not RunState.UNKNOWN

    def finished(self) -> bool:
        """No step will run again: completed, cancelled or (being) data-deleted."""
        return self in _FINISHED

    def stopped(self) -> bool:
        """Steps, callbacks and timeouts ignore the run: paused, cancelled or (being) deleted."""
        return self in _STOPPED

    def can_transition_to(self, to: RunState) -> bool:
        """Whether the run-state controller may move a run from this state to ``to``."""
        return to in _TRANSITIONS.get(self, ())


_NAMES = {
    RunState.UNKNOWN: "Unknown",
    RunState.INITIATED: "Initiated",
    RunState.RUNNING: "Running",
    RunState.PAUSED: "Paused",
    RunState.CANCELLED: "Cancelled",
    RunState.COMPLETED: "Completed",
    RunState.DATA_DELETED: "Data Deleted",
    RunState.REQUESTED_DATA_DELETED: "Requested Data Deleted",
}

_FINISHED = frozenset(
    {
        RunState.COMPLETED,
        RunState.CANCELLED,
        RunState.DATA_DELETED,
        RunState.REQUESTED_DATA_DELETED,
    }
)
_STOPPED = frozenset(
    {
        RunState.PAUSED,
        RunState.CANCELLED,
        RunState.DATA_DELETED,
        RunState.REQUESTED_DATA_DELETED,
    }
)

# luno-behaviour.md §4.2: the controller's table. Engine writes outside the table
# (trigger, step updates, the delete consumer) are checked by the engine itself.
_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.INITIATED: frozenset({RunState.RUNNING, RunState.PAUSED}),
    RunState.RUNNING: frozenset({RunState.COMPLETED, RunState.PAUSED, RunState.CANCELLED}),
    RunState.PAUSED: frozenset({RunState.RUNNING, RunState.CANCELLED}),
    RunState.COMPLETED: frozenset({RunState.REQUESTED_DATA_DELETED}),
    RunState.CANCELLED: frozenset({RunState.REQUESTED_DATA_DELETED}),
    RunState.REQUESTED_DATA_DELETED: frozenset({RunState.DATA_DELETED}),
    RunState.DATA_DELETED: frozenset({RunState.REQUESTED_DATA_DELETED}),
}


class State(enum.IntEnum):
    """The state of one background process, as reported by ``Workflow.states()``."""

    UNKNOWN = 0
    SHUTDOWN = 1
    RUNNING = 2
    IDLE = 3
