"""Timeout processes: insert timeouts when runs arrive, fire them when they are due."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from .._attempts import AttemptFailed, Policy
from .._clock import Clock
from .._engine import Telemetry
from .._errors import DecodeError, RecordNotFound, TimeoutNotFound, VersionConflict
from .._event import Event
from .._execution import Executor
from .._markers import SKIP, Skip
from .._protocols import TimeoutRecord, TimeoutStore
from .._record import Run
from .._runstate import RunState
from .._supervisor import ProcessContext
from .._types import StepResult
from ._load import load_current

__all__ = ["AsyncTimeout", "AsyncTimer", "TimeoutInserter", "TimeoutPoller"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

AsyncTimer = Callable[[Run[T, S], datetime], Awaitable[datetime | None]]
AsyncTimeout = Callable[[Run[T, S], datetime], Awaitable[StepResult[S]]]


class TimeoutInserter(Generic[T, S]):
    """For each event of a status: call every timer and create the timeouts they ask for."""

    def __init__(
        self,
        runs: Executor[T, S],
        timeouts: TimeoutStore,
        clock: Clock,
        *,
        process: str,
        status: int,
        timers: Sequence[tuple[int, AsyncTimer[T, S]]],
        policy: Policy,
    ) -> None:
        self._runs = runs
        self._timeouts = timeouts
        self._clock = clock
        self._process = process
        self._status = status
        self._timers = timers
        self._policy = policy

    async def __call__(self, event: Event) -> None:
        runs = self._runs
        record = await load_current(runs.writer.store, event, self._status)
        write = await runs.call(
            record, self._insert, process=self._process, policy=self._policy, what="timer"
        )
        if not isinstance(write, Skip):  # a poison run or repeated timer errors: pause it
            await runs.writer.write(write)

    async def _insert(self, run: Run[T, S]) -> Skip:
        now = self._clock.now()
        for index, timer in self._timers:
            expire_at = await timer(run, now)
            if expire_at is None:
                continue
            await self._timeouts.create(
                run.workflow_name,
                run.foreign_id,
                run.run_id,
                self._status,
                expire_at,
                created_at=now,
                record_version=run.meta.version,
                index=index,
            )
        return SKIP


class TimeoutPoller(Generic[T, S]):
    """Fires due timeouts of one status; sleeps until the next is due (or one is inserted)."""

    def __init__(
        self,
        runs: Executor[T, S],
        timeouts: TimeoutStore,
        clock: Clock,
        telemetry: Telemetry,
        *,
        status: int,
        fns: Mapping[int, AsyncTimeout[T, S]],
        policy: Policy,
        polling_frequency: float,
    ) -> None:
        self._runs = runs
        self._timeouts = timeouts
        self._clock = clock
        self._telemetry = telemetry
        self._workflow = runs.definition.name
        self._status = status
        self._fns = fns
        self._policy = policy
        self._poll = polling_frequency

    async def __call__(self, ctx: ProcessContext) -> None:
        store = self._timeouts
        parked: dict[int, float] = {}  # timeout ID -> when (monotonic) to attempt it again
        while not ctx.draining:
            ctx.busy = True
            now = self._clock.now()
            due = await store.list_valid(self._workflow, self._status, now)
            progressed = False
            error: BaseException | None = None
            moment = time.monotonic()
            for stale in parked.keys() - {t.id for t in due}:
                del parked[stale]
            for timeout in due:
                if parked.get(timeout.id, 0.0) > moment:
                    continue  # its run's last attempt failed: it waits for its retry
                try:
                    progressed = await self._fire(ctx, timeout, now) or progressed
                    parked.pop(timeout.id, None)
                except AttemptFailed as failed:
                    parked[timeout.id] = time.monotonic() + failed.delay
                except Exception as exc:
                    error = error or exc
            if error is not None:
                raise error
            if progressed:
                ctx.progress()
                continue
            nxt = await store.next_expiry(self._workflow, self._status)
            ctx.busy = False
            retry = min(parked.values(), default=None)
            await self._sleep(
                nxt if nxt is not None and nxt > now else None,
                None if retry is None else retry - time.monotonic(),
            )

    async def _sleep(self, deadline: datetime | None, retry_in: float | None) -> None:
        waits = [asyncio.ensure_future(self._timeouts.wait_for_insert(self._workflow, self._poll))]
        if deadline is not None:
            waits.append(asyncio.ensure_future(self._clock.sleep_until(deadline)))
        if retry_in is not None:
            waits.append(asyncio.ensure_future(asyncio.sleep(max(0.0, retry_in))))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.wait(waits)

    async def _fire(self, ctx: ProcessContext, timeout: TimeoutRecord, now: datetime) -> bool:
        """Handle one due timeout; returns whether anything changed."""
        runs = self._runs
        writer = runs.writer
        try:
            record = await writer.store.lookup(timeout.run_id)
        except RecordNotFound:
            return await self._drop(timeout)
        except DecodeError as exc:
            return await self._quarantine(ctx, timeout, exc)
        if record.status != timeout.status or record.run_state.finished():
            return await self._drop(timeout)
        fn = self._fns.get(timeout.index)
        if fn is None:  # the workflow no longer has this timeout
            return await self._drop(timeout)
        if record.run_state.stopped():
            return False  # paused: fires after the run is resumed

        async def on_timeout(run: Run[T, S]) -> StepResult[S]:
            return await fn(run, now)

        with self._telemetry.tracing.span(
            f"conveyor timeout {ctx.name}", run_id=record.run_id, workflow=self._workflow
        ):
            write = await runs.call(
                record, on_timeout, process=ctx.name, policy=self._policy, what="timeout"
            )
        if not isinstance(write, Skip):
            try:
                await writer.write(write)
            except VersionConflict:
                return True  # the run moved meanwhile: look again
            if write.record.run_state is RunState.PAUSED:
                return True  # keeps its timeout until resumed
        with contextlib.suppress(TimeoutNotFound):
            await self._timeouts.complete(timeout.id)
        return True

    async def _quarantine(
        self, ctx: ProcessContext, timeout: TimeoutRecord, exc: DecodeError
    ) -> bool:
        """The run's record does not decode: pause it (by its stand-in) or leave it be."""
        self._telemetry.logger.error(
            "a run's stored record does not decode: its timeout waits",
            None,
            workflow=self._workflow,
            run_id=timeout.run_id,
            process=ctx.name,
            error=str(exc),
        )
        if exc.record is None:
            raise AttemptFailed(exc, 60.0, 1) from exc  # look again in a minute
        writer = self._runs.writer
        with contextlib.suppress(VersionConflict):
            await writer.write(writer.pause_write(exc.record, f"quarantined: {exc}"))
        return True

    async def _drop(self, timeout: TimeoutRecord) -> bool:
        with contextlib.suppress(TimeoutNotFound):
            await self._timeouts.cancel(timeout.id)
        return True
