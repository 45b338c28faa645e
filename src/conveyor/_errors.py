"""Every error conveyor raises on purpose.

The tree::

    WorkflowError
    ├── BuildError                 a graph or option mistake found by Builder.build()
    ├── NotRunning                 trigger/schedule outside run() (and client())
    ├── InvalidSchedule            a cron spec that does not parse (also a ValueError)
    ├── InvalidForeignID           a foreign ID no backend can store (also a ValueError)
    ├── InvalidObject              trigger(initial=...) of another type (also a TypeError)
    ├── RecordNotFound             (also a LookupError)
    ├── TimeoutNotFound            (also a LookupError)
    ├── OutboxRecordNotFound       (also a LookupError)
    ├── WorkflowInProgress         the foreign ID already has an active run
    ├── VersionConflict            a compare-and-set write lost to another writer
    ├── InvalidTransition          a status or run-state move the graph or table forbids
    │   └── CallbackRejected       callback(): no callback of the status applied to the run
    ├── RunEnded                   wait(): the run finished without reaching the status
    ├── DecodeError                a stored object no longer decodes (also a ValueError)
    └── AdapterError               a backend failed; the driver's error is the __cause__
        └── AdapterUnavailable     the backend cannot be reached (also a ConnectionError)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._record import Record

__all__ = [
    "AdapterError",
    "AdapterUnavailable",
    "BuildError",
    "CallbackRejected",
    "CallbackRejection",
    "DecodeError",
    "InvalidForeignID",
    "InvalidObject",
    "InvalidSchedule",
    "InvalidTransition",
    "NotRunning",
    "OutboxRecordNotFound",
    "RecordNotFound",
    "RunEnded",
    "TimeoutNotFound",
    "VersionConflict",
    "WorkflowError",
    "WorkflowInProgress",
]


class WorkflowError(Exception):
    """Root of every error conveyor raises on purpose."""


class BuildError(WorkflowError):
    """The workflow definition is invalid (raised by ``Builder`` and ``Builder.build``)."""


class NotRunning(WorkflowError):
    """The workflow's background processes are not running (call ``run()`` first)."""


class InvalidSchedule(WorkflowError, ValueError):
    """A schedule spec that is not valid cron, a descriptor, or ``@every <duration>``."""


class InvalidObject(WorkflowError, TypeError):
    """An object given to the workflow (``trigger(initial=...)``) is not of its type."""


class InvalidForeignID(WorkflowError, ValueError):
    """A foreign ID outside the limits every backend keeps (see ``conveyor._ids``): not a
    ``str``, longer than 1,024 UTF-8 bytes, or holding a NUL or a lone surrogate.

    ``foreign_id`` is the refused value, ``problem`` what is wrong with it.
    """

    def __init__(self, foreign_id: object, problem: str) -> None:
        shown = repr(foreign_id)
        if len(shown) > 60:
            shown = shown[:40] + "..." + shown[-12:]
        super().__init__(f"invalid foreign ID {shown}: {problem}")
        self.foreign_id = foreign_id
        self.problem = problem


class RecordNotFound(WorkflowError, LookupError):
    """No record matches the run ID or foreign ID."""


class TimeoutNotFound(WorkflowError, LookupError):
    """No timeout has that ID."""


class OutboxRecordNotFound(WorkflowError, LookupError):
    """No outbox event has that ID."""


class WorkflowInProgress(WorkflowError):
    """The foreign ID already has an Initiated, Running or Paused run."""

    def __init__(self, workflow_name: str = "", foreign_id: str = "") -> None:
        super().__init__(
            f"foreign ID {foreign_id!r} already has a run in progress in workflow "
            f"{workflow_name!r}: trigger again once it has finished"
        )
        self.workflow_name = workflow_name
        self.foreign_id = foreign_id


class VersionConflict(WorkflowError):
    """A write expected a stored version that is no longer there: someone else moved the run."""

    def __init__(self, run_id: str, expected_version: int, actual_version: int | None) -> None:
        super().__init__(
            f"record was modified since it was loaded: run_id={run_id} "
            f"expected_version={expected_version} actual_version={actual_version}"
        )
        self.run_id = run_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class InvalidTransition(WorkflowError):
    """A status move not in the graph, or a run-state move not in the RunState table."""


CallbackRejection = Literal["not_at_status", "stopped", "finished", "moved"]
"""Why ``callback()`` applied to no run: the run is at another status, it is paused, it
has finished, or (``moved``) the callback ran but its write lost to a racing writer."""


class CallbackRejected(InvalidTransition):
    """``callback()`` applied no callback: ``reason`` says why, ``record`` is the run as
    it was found (for ``moved``: as the racing writer left it)."""

    def __init__(self, record: Record, reason: CallbackRejection, message: str) -> None:
        super().__init__(message)
        self.record = record
        self.reason: CallbackRejection = reason


class RunEnded(WorkflowError):
    """``wait()`` gave up: the run finished (or was deleted) without reaching the status."""

    def __init__(self, record: Record, message: str) -> None:
        super().__init__(message)
        self.record = record


class DecodeError(WorkflowError, ValueError):
    """Stored bytes no longer decode into the workflow's object type (or status enum).

    ``record`` is the stored record when there is one: a control action (``pause`` and
    the others) that raises it has made its move, and this is the record it wrote. A store
    that cannot decode a row at all gives a stand-in (the row's identity and version, run
    state ``UNKNOWN``, the problem as ``meta.run_state_reason``). ``run_id`` names the run.
    """

    def __init__(
        self, message: str, record: Record | None = None, *, run_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.record = record
        self.run_id: str | None = record.run_id if record is not None else run_id


class AdapterError(WorkflowError):
    """A backend operation failed; the driver's exception is chained as ``__cause__``."""


class AdapterUnavailable(AdapterError, ConnectionError):
    """The backend could not be reached."""
