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
from ._load import STALE_REASON, Ignore, Quarantine, Undecodable, event_version, load_current

__all__ = ["COPY_REASON", "SKIP_REASON", "StepHandler"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

SKIP_REASON = "next value specified skip"
"""The skipped-events reason when a step returns ``run.skip()`` (the original's)."""

COPY_REASON = "copy of an event in the same batch"
"""The skipped-events reason for a second copy of an event in one batch (a broker's
redelivery, or the outbox relay publishing again after a crash)."""

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
        acks: list[Event] = []
        if len(events) == 1:
            results: list[_Prepared] = [await self._guarded(events[0])]
        else:
            events, acks = self._one_per_run(events)
            results = list(await asyncio.gather(*(self._guarded(e) for e in events)))
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

    def _one_per_run(self, events: Sequence[Event]) -> tuple[list[Event], list[Event]]:
        """The batch's events to handle, at most one per run, and the others (to acknowledge).

        A batch's events run concurrently, so two about one run would both read its record
        and both run the step, one of them in vain. Of a run's events, only the one about
        its latest version can apply (an event exists only once its version is stored), so
        the others are dropped here as the version rule would drop them.
        """
        latest: dict[str, Event] = {}
        for event in events:
            kept = latest.get(event.foreign_id)
            if kept is None or event_version(event) > event_version(kept):
                latest[event.foreign_id] = event
        if len(latest) == len(events):
            return list(events), []
        chosen = {id(e) for e in latest.values()}
        handle: list[Event] = []
        dropped: list[Event] = []
        for event in events:
            if id(event) in chosen:
                handle.append(event)
                continue
            dropped.append(event)
            same = event_version(event) == event_version(latest[event.foreign_id])
            self._on_skip(COPY_REASON if same else STALE_REASON)
        return handle, dropped

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
