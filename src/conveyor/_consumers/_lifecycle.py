"""Consumers of the run-state-change and delete topics: hooks, pause retry, data deletion."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .._event import Event, Header
from .._record import TypedRecord
from .._runstate import RunState
from ._load import Skip, load_record

__all__ = ["DeleteHandler", "HookHandler", "PauseRetryHandler", "run_state_is"]

DELETED_OBJECT = b'{"result":"deleted"}'


def run_state_is(state: RunState) -> Any:
    """An event filter: the run_state header equals ``state``."""
    wanted = str(int(state))

    def accept(event: Event) -> bool:
        return event.headers.get(Header.RUN_STATE) == wanted

    return accept


class HookHandler:
    """Calls the user's hook with the run's current record (at least once per event)."""

    def __init__(self, engine: Any, hook: Any) -> None:
        self._engine = engine
        self._hook = hook

    async def __call__(self, event: Event) -> None:
        engine = self._engine
        record = await load_record(engine, event)
        try:
            obj = engine.codec.decode(record.object)
            status = engine.status_type(record.status)
        except ValueError:
            raise Skip("unable to unmarshal object") from None
        typed = TypedRecord(
            record.workflow_name,
            record.foreign_id,
            record.run_id,
            record.run_state,
            status,
            obj,
            record.created_at,
            record.updated_at,
            record.meta,
        )
        await self._hook(typed)


class PauseRetryHandler:
    """Resumes a run still paused ``resume_after`` seconds after it was paused."""

    def __init__(self, engine: Any, resume_after: float) -> None:
        self._engine = engine
        self._resume_after = timedelta(seconds=resume_after)

    async def __call__(self, event: Event) -> None:
        engine = self._engine
        record = await load_record(engine, event)
        if record.run_state is not RunState.PAUSED:
            raise Skip("record not paused")
        if record.updated_at > engine.clock.now() - self._resume_after:
            raise Skip("paused too recently")
        engine.errors.clear_run(record.run_id)
        await engine.write(engine.update(record, run_state=RunState.RUNNING, reason=""))


class DeleteHandler:
    """Replaces a run's object (custom scrub or ``{"result":"deleted"}``): DataDeleted."""

    def __init__(self, engine: Any, custom: Any) -> None:
        self._engine = engine
        self._custom = custom

    async def __call__(self, event: Event) -> None:
        engine = self._engine
        record = await load_record(engine, event)
        if record.run_state is not RunState.REQUESTED_DATA_DELETED:
            raise Skip("record not awaiting deletion")
        if self._custom is None:
            replacement = DELETED_OBJECT
        else:
            obj = engine.codec.decode(record.object)
            scrubbed = await self._custom(obj)
            replacement = engine.codec.encode(obj if scrubbed is None else scrubbed)
        await engine.write(engine.update(record, run_state=RunState.DATA_DELETED, obj=replacement))
