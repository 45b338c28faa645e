"""Step consumers: run the user's step for every run that reaches a status."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._errors import VersionConflict
from .._event import Event
from .._protocols import RecordWrite
from ._consume import Outcome
from ._load import Skip, StaleRecord, load_current

__all__ = ["StaleRecord", "StepHandler"]


class StepHandler:
    """Handles a batch of events for one status: lookup, version rule, step, write."""

    def __init__(
        self,
        engine: Any,
        process: str,
        status: int,
        fn: Callable[[Any], Awaitable[Any]],
        pause_after: int,
        on_skip: Callable[[str], None],
    ) -> None:
        self._engine = engine
        self._process = process
        self._status = status
        self._fn = fn
        self._pause_after = pause_after
        self._on_skip = on_skip

    async def __call__(self, events: Sequence[Event]) -> Outcome:
        if len(events) == 1:
            results: list[RecordWrite | BaseException | None] = [await self._guarded(events[0])]
        else:
            results = list(await asyncio.gather(*(self._guarded(e) for e in events)))
        acks: list[Event] = []
        error: BaseException | None = None
        writes: list[RecordWrite] = []
        written: list[Event] = []
        for event, result in zip(events, results, strict=True):
            if isinstance(result, RecordWrite):
                writes.append(result)
                written.append(event)
            elif isinstance(result, BaseException):
                error = error or result
            else:
                acks.append(event)
        if writes:
            outcomes = await self._engine.write_many(writes)
            for event, outcome in zip(written, outcomes, strict=True):
                if isinstance(outcome, VersionConflict):
                    self._on_skip("record modified concurrently")
                elif outcome is not None:
                    error = error or outcome
                    continue
                acks.append(event)
        return Outcome(acks, error)

    async def _guarded(self, event: Event) -> RecordWrite | BaseException | None:
        tracing = self._engine.tracing
        try:
            if tracing.enabled:
                with tracing.span(
                    f"conveyor step {self._process}",
                    event.headers,
                    run_id=event.foreign_id,
                    workflow=self._engine.name,
                ):
                    return await self._prepare(event)
            return await self._prepare(event)
        except Skip as skip:
            self._on_skip(skip.reason)
            if self._engine.debug:
                self._engine.logger.debug(
                    "event skipped",
                    process=self._process,
                    run_id=event.foreign_id,
                    reason=skip.reason,
                )
            return None
        except Exception as exc:
            return exc

    async def _prepare(self, event: Event) -> RecordWrite | None:
        engine = self._engine
        record = await load_current(engine, event, self._status)
        write: RecordWrite | None = await engine.run_user_code(
            record, self._fn, (), process=self._process, pause_after=self._pause_after
        )
        return write
