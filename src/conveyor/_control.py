"""Run-state control: pause, resume, cancel and delete the data of one run.

Each move is a compare-and-set write of the run's next version, allowed only by the
RunState table (luno-behaviour.md §4.2). ``move_latest`` re-reads the run and tries again
when another writer got there first.
"""

from __future__ import annotations

from ._errors import InvalidTransition, VersionConflict
from ._record import Record
from ._runstate import RunState
from ._writer import ErrorCounter, RecordWriter

__all__ = ["MAX_ATTEMPTS", "RunStateController", "move", "move_latest"]

MAX_ATTEMPTS = 20
"""How many times ``move_latest`` re-reads a run whose version moved under it."""

_VERBS = {
    RunState.PAUSED: "pause",
    RunState.RUNNING: "resume",
    RunState.CANCELLED: "cancel",
    RunState.REQUESTED_DATA_DELETED: "delete the data of",
}


def check_move(record: Record, to: RunState) -> None:
    """Raise ``InvalidTransition`` unless the RunState table allows ``record`` to move ``to``."""
    if not record.run_state.can_transition_to(to):
        verb = _VERBS.get(to, f"move to {to}")
        raise InvalidTransition(
            f"cannot {verb} a run that is {record.run_state} (run_id={record.run_id})"
        )


async def move(
    writer: RecordWriter,
    record: Record,
    to: RunState,
    reason: str = "",
    *,
    errors: ErrorCounter | None = None,
) -> Record:
    """Write ``record``'s next version at run state ``to``; return the record written.

    Raises ``InvalidTransition`` for a move the table forbids and ``VersionConflict`` if
    the stored version is no longer ``record``'s. A resume forgets the run's counted errors.
    """
    check_move(record, to)
    write = writer.update(record, run_state=to, reason=reason)
    await writer.write(write)
    if to is RunState.RUNNING and errors is not None:
        errors.clear_run(record.run_id)
    return write.record


async def move_latest(
    writer: RecordWriter,
    run_id: str,
    to: RunState,
    reason: str = "",
    *,
    errors: ErrorCounter | None = None,
    attempts: int = MAX_ATTEMPTS,
) -> Record:
    """``move`` applied to the latest version of ``run_id``, re-read after each conflict.

    Raises ``RecordNotFound``, ``InvalidTransition``, or after ``attempts`` conflicts the
    last ``VersionConflict`` (its ``expected_version`` is the version this call last
    tried to replace, its ``actual_version`` the one that was stored instead).
    """
    conflict: VersionConflict | None = None
    for _ in range(max(1, attempts)):
        record = await writer.store.lookup(run_id)
        try:
            return await move(writer, record, to, reason, errors=errors)
        except VersionConflict as exc:
            conflict = exc
    assert conflict is not None
    raise conflict


class RunStateController:
    """Moves one run through the RunState table, starting from the record it was given.

    Each call writes a new version (compare-and-set on the version it holds) and keeps
    the result as ``record``, so one controller can make successive moves (pause, then
    resume, ...). Each returns the record written. Raises ``InvalidTransition`` for a move
    the table forbids and ``VersionConflict`` if the run changed since ``record`` was read.
    """

    def __init__(
        self, writer: RecordWriter, record: Record, *, errors: ErrorCounter | None = None
    ) -> None:
        self._writer = writer
        self._errors = errors
        self.record: Record = record

    async def pause(self, reason: str = "") -> Record:
        """Pause the run (Initiated or Running)."""
        return await self._move(RunState.PAUSED, reason)

    async def cancel(self, reason: str = "") -> Record:
        """Cancel the run (Running or Paused)."""
        return await self._move(RunState.CANCELLED, reason)

    async def resume(self) -> Record:
        """Resume a paused run: its current step runs again."""
        return await self._move(RunState.RUNNING, "")

    async def delete_data(self, reason: str = "") -> Record:
        """Ask for a finished run's object to be scrubbed."""
        return await self._move(RunState.REQUESTED_DATA_DELETED, reason)

    async def _move(self, to: RunState, reason: str) -> Record:
        self.record = await move(self._writer, self.record, to, reason, errors=self._errors)
        return self.record
