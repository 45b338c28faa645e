"""Records (the stored, untyped form of a run) and their typed views."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from ._frozen import fast_init
from ._markers import SAVE_AND_REPEAT, SKIP, Cancel, Pause, SaveAndRepeat, Skip
from ._runstate import RunState

__all__ = ["Failure", "Meta", "Record", "Run", "TypedRecord"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


@fast_init
@dataclass(frozen=True, slots=True)
class Meta:
    """Bookkeeping the engine keeps with every record."""

    run_state_reason: str = ""
    """Why the run was paused, cancelled or deleted; cleared on resume."""
    status_description: str = ""
    """The status's name when it was written (survives enum renames)."""
    version: int = 0
    """1 after trigger, +1 on every write the engine makes."""
    trace_origin: str = ""
    """Where ``trigger`` was called from (file:line of the caller's frames)."""
    reached: tuple[int, ...] = ()
    """Every status the run has been at, in the order first reached (so ``wait`` can tell
    that a run passed a status before it was called). Stores persist it."""


@fast_init
@dataclass(frozen=True, slots=True)
class Record:
    """One run as a store keeps it: ``object`` is the user's object as JSON bytes."""

    workflow_name: str
    foreign_id: str
    run_id: str
    run_state: RunState
    status: int
    object: bytes
    created_at: datetime
    updated_at: datetime
    meta: Meta = field(default_factory=Meta)

    @property
    def version(self) -> int:
        """Shorthand for ``meta.version``."""
        return self.meta.version

    def replace(self, **changes: Any) -> Record:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt of a step, timeout or hook on one version of a run.

    ``(run_id, version, attempt)`` is its key: ``attempt`` counts the failures at that
    version (1 for the first). ``process`` is the background process that made the
    attempt (its retries belong to whoever holds that process's role). ``failed_at`` is
    business time (the workflow's clock, like ``updated_at``); ``next_attempt_at`` is when
    the next attempt is due by the wall clock in UTC (retries wait real time), ``None``
    when there is none (the run was paused).
    """

    workflow_name: str
    run_id: str
    version: int
    attempt: int
    process: str
    error_type: str
    message: str
    failed_at: datetime
    next_attempt_at: datetime | None = None


@dataclass(slots=True)
class TypedRecord(Generic[T, S]):
    """A record whose object is decoded into the user's type and whose status is the user's enum."""

    workflow_name: str
    foreign_id: str
    run_id: str
    run_state: RunState
    status: S
    object: T
    created_at: datetime
    updated_at: datetime
    meta: Meta
    failure: Failure | None = None
    """The latest failed attempt at this version (``Workflow.lookup`` fills it in when the
    store records failures); ``None`` otherwise."""

    @property
    def version(self) -> int:
        """Shorthand for ``meta.version``."""
        return self.meta.version


class Run(TypedRecord[T, S]):
    """The run a step, callback or timeout function works on.

    Changes to ``object`` are saved with the next status (also when the step pauses,
    cancels or saves-and-repeats).
    """

    __slots__ = ()

    @property
    def idempotency_key(self) -> str:
        """``<run_id>:<version>``: the same for every delivery of this step attempt."""
        return f"{self.run_id}:{self.meta.version}"

    def skip(self) -> Skip:
        """Do not move the run and do not write anything."""
        return SKIP

    def pause(self, reason: str = "") -> Pause:
        """Pause the run (keeping changes to ``object``); it can be resumed later."""
        return Pause(reason)

    def cancel(self, reason: str = "") -> Cancel:
        """Cancel the run (keeping changes to ``object``)."""
        return Cancel(reason)

    def save_and_repeat(self) -> SaveAndRepeat:
        """Save ``object`` and run this step again on the new version."""
        return SAVE_AND_REPEAT
