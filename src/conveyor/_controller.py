"""RunStateController: pause, resume, cancel and delete the data of one run."""

from __future__ import annotations

from typing import Any

from ._errors import VersionConflict
from ._record import Record
from ._runstate import RunState

__all__ = ["RunStateController"]


class RunStateController:
    """Moves one run through the RunState table (luno-behaviour.md §4.2).

    Each call writes a new version (compare-and-set on the version it holds) and keeps
    the result, so one controller can make successive moves (pause, then resume, ...).
    Raises ``InvalidTransition`` for a move the table forbids and ``VersionConflict``
    if the run changed since the controller's record was read.
    """

    def __init__(self, engine: Any, record: Record) -> None:
        self._engine = engine
        self.record = record

    async def pause(self, reason: str = "") -> Record:
        return await self._move(RunState.PAUSED, reason)

    async def cancel(self, reason: str = "") -> Record:
        return await self._move(RunState.CANCELLED, reason)

    async def resume(self) -> Record:
        return await self._move(RunState.RUNNING, "")

    async def delete_data(self, reason: str = "") -> Record:
        return await self._move(RunState.REQUESTED_DATA_DELETED, reason)

    async def _move(self, to: RunState, reason: str) -> Record:
        engine = self._engine
        engine.check_transition(self.record, to)
        write = engine.update(self.record, run_state=to, reason=reason)
        await engine.write(write)
        if to is RunState.RUNNING:
            engine.errors.clear_run(self.record.run_id)
        self.record = write.record
        return self.record


async def move_with_retry(engine: Any, run_id: str, action: str, *args: Any) -> Record:
    """Apply a controller move to the latest version of a run, re-reading on conflicts."""
    for _ in range(20):
        record = await engine.store.lookup(run_id)
        controller = RunStateController(engine, record)
        try:
            result: Record = await getattr(controller, action)(*args)
            return result
        except VersionConflict:
            continue
    record = await engine.store.lookup(run_id)
    raise VersionConflict(run_id, record.meta.version, None)
