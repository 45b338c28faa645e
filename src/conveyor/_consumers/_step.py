"""Step consumers: run the user's step for every run that reaches a status."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .._attempts import AttemptFailed, Policy
from .._engine import Telemetry
from .._errors import VersionConflict
from .._event import Event
from .._execution import Executor
from .._markers import Skip
from .._protocols import RecordWrite
from .._record import Record
from .._types import AsyncStep
from .._writer import RecordWriter
from ._consume import Outcome
from ._load import Ignore, Quarantine, Undecodable, event_version, load_current

__all__ = ["SKIP_REASON", "StepHandler"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

SKIP_REASON = "next value specified skip"
"""The skipped-events reason when a step returns ``run.skip()`` (the original's)."""

_Prepared = RecordWrite | BaseException | None


class StepHandler(Generic[T, S]):
    """Handles a batch of events for one status: lookup, version rule, step, write."""

    def __init__(
        self,
        runs: Executor[T, S],
        writer: RecordWriter,
        telemetry: Telemetry,
        *,
        process: str,
        status: int,
        fn: AsyncStep[T, S],
        policy: Policy,
        on_skip: Callable[[str], None],
    ) -> None:
        self._runs = runs
        self._writer = writer
        self._store = writer.store
        self._telemetry = telemetry
        self._workflow = runs.definition.name
        self._process = process
        self._status = status
        self._fn = fn
        self._policy = policy
        statuses = frozenset(int(s) for s in runs.definition.status_type)
        self._known = statuses.__contains__
        self._on_skip = on_skip

    async def __call__(self, events: Sequence[Event]) -> Outcome:
        if len(events) == 1:
            results: list[_Prepared] = [await self._guarded(events[0])]
        else:
            results = list(await asyncio.gather(*(self._guarded(e) for e in events)))
        acks: list[Event] = []
        retries: list[tuple[Event, float]] = []
        error: BaseException | None = None
        writes: list[RecordWrite] = []
        written: list[Event] = []
        for event, result in zip(events, results, strict=True):
            if isinstance(result, RecordWrite):
                writes.append(result)
                written.append(event)
            elif isinstance(result, AttemptFailed):
                retries.append((event, result.delay))
            elif isinstance(result, BaseException):
                error = error or result
            else:
                acks.append(event)
        if writes:
            outcomes = await self._writer.write_many(writes)
            for event, outcome in zip(written, outcomes, strict=True):
                if isinstance(outcome, VersionConflict):
                    self._on_skip("record modified concurrently")
                elif outcome is not None:
                    error = error or outcome
                    continue
                acks.append(event)
        return Outcome(acks, error, retries)

    async def _guarded(self, event: Event) -> _Prepared:
        tracing = self._telemetry.tracing
        try:
            if tracing.enabled:
                with tracing.span(
                    f"conveyor step {self._process}",
                    event.headers,
                    run_id=event.foreign_id,
                    workflow=self._workflow,
                ):
                    return await self._prepare(event)
            return await self._prepare(event)
        except Quarantine as bad:
            self._log_quarantine(bad.record, bad.problem, event)
            return self._writer.pause_write(bad.record, bad.problem)
        except Undecodable as bad:
            stand_in = bad.error.record
            if stand_in is not None and stand_in.meta.version != event_version(event):
                stand_in = None  # the event is not about the stored version: skip it
            if stand_in is not None:
                problem = f"quarantined: {bad.error}"
                self._log_quarantine(stand_in, problem, event)
                return self._writer.pause_write(stand_in, problem)
            self._telemetry.logger.error(
                "a run's stored record does not decode: skipping its event",
                None,
                workflow=self._workflow,
                run_id=bad.error.run_id or event.foreign_id,
                process=self._process,
                error=str(bad.error),
            )
            self._on_skip(bad.reason)
            return None
        except Ignore as skip:
            self._on_skip(skip.reason)
            if self._telemetry.debug:
                self._telemetry.logger.debug(
                    "event skipped",
                    process=self._process,
                    run_id=event.foreign_id,
                    reason=skip.reason,
                )
            return None
        except Exception as exc:
            return exc

    def _log_quarantine(self, record: Record, problem: str, event: Event) -> None:
        self._telemetry.logger.error(
            "a run's record is not what the workflow expects: pausing it",
            None,
            workflow=self._workflow,
            foreign_id=record.foreign_id,
            run_id=record.run_id,
            status=record.meta.status_description or str(record.status),
            version=record.meta.version,
            process=self._process,
            error=problem,
        )

    async def _prepare(self, event: Event) -> RecordWrite:
        record = await load_current(self._store, event, self._status, self._known)
        result = await self._runs.call(record, self._fn, process=self._process, policy=self._policy)
        if isinstance(result, Skip):
            raise Ignore(SKIP_REASON)
        return result
