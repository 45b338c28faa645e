"""Timeout processes: insert timeouts when runs arrive, fire them when they are due."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from .._errors import RecordNotFound, TimeoutNotFound, VersionConflict
from .._event import Event
from .._protocols import TimeoutRecord
from .._runstate import RunState
from .._supervisor import ProcessContext
from ._load import load_current

__all__ = ["TimeoutInserter", "TimeoutPoller"]


class TimeoutInserter:
    """For each event of a status: call every timer and create the timeouts they ask for."""

    def __init__(
        self,
        engine: Any,
        process: str,
        status: int,
        timers: Sequence[tuple[int, Callable[..., Awaitable[Any]]]],
        pause_after: int,
    ) -> None:
        self._engine = engine
        self._process = process
        self._status = status
        self._timers = timers
        self._pause_after = pause_after

    async def __call__(self, event: Event) -> None:
        engine = self._engine
        record = await load_current(engine, event, self._status)
        write = await engine.run_user_code(
            record, self._insert, (), process=self._process, pause_after=self._pause_after
        )
        if write is not None:  # a poison run or repeated timer errors: pause it
            await engine.write(write)

    async def _insert(self, run: Any) -> Any:
        engine = self._engine
        now: datetime = engine.clock.now()
        for index, timer in self._timers:
            expire_at = await timer(run, now)
            if expire_at is None:
                continue
            await engine.timeout_store.create(
                engine.name,
                run.foreign_id,
                run.run_id,
                self._status,
                expire_at,
                created_at=now,
                record_version=run.meta.version,
                index=index,
            )
        return run.skip()


class TimeoutPoller:
    """Fires due timeouts of one status; sleeps until the next is due (or one is inserted)."""

    def __init__(
        self,
        engine: Any,
        status: int,
        fns: dict[int, Callable[..., Awaitable[Any]]],
        pause_after: int,
        polling_frequency: float,
    ) -> None:
        self._engine = engine
        self._status = status
        self._fns = fns
        self._pause_after = pause_after
        self._poll = polling_frequency

    async def __call__(self, ctx: ProcessContext) -> None:
        engine = self._engine
        store = engine.timeout_store
        while True:
            ctx.busy = True
            now: datetime = engine.clock.now()
            due = await store.list_valid(engine.name, self._status, now)
            progressed = False
            error: BaseException | None = None
            for timeout in due:
                try:
                    progressed = await self._fire(ctx, timeout, now) or progressed
                except Exception as exc:
                    error = error or exc
            if error is not None:
                raise error
            if progressed:
                ctx.progress()
                continue
            nxt = await store.next_expiry(engine.name, self._status)
            ctx.busy = False
            await self._sleep(nxt if nxt is not None and nxt > now else None)

    async def _sleep(self, deadline: datetime | None) -> None:
        engine = self._engine
        waits = [
            asyncio.ensure_future(engine.timeout_store.wait_for_insert(engine.name, self._poll))
        ]
        if deadline is not None:
            waits.append(asyncio.ensure_future(engine.clock.sleep_until(deadline)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.wait(waits)

    async def _fire(self, ctx: ProcessContext, timeout: TimeoutRecord, now: datetime) -> bool:
        """Handle one due timeout; returns whether anything changed."""
        engine = self._engine
        store = engine.timeout_store
        try:
            record = await engine.store.lookup(timeout.run_id)
        except RecordNotFound:
            return await self._drop(timeout)
        if record.status != timeout.status or record.run_state.finished():
            return await self._drop(timeout)
        fn = self._fns.get(timeout.index)
        if fn is None:  # the workflow no longer has this timeout
            return await self._drop(timeout)
        if record.run_state.stopped():
            return False  # paused: fires after the run is resumed
        with engine.tracing.span(
            f"conveyor timeout {ctx.name}", run_id=record.run_id, workflow=engine.name
        ):
            write = await engine.run_user_code(
                record, fn, (now,), process=ctx.name, pause_after=self._pause_after
            )
        if write is not None:
            try:
                await engine.write(write)
            except VersionConflict:
                return True  # the run moved meanwhile: look again
            if write.record.run_state is RunState.PAUSED:
                return True  # keeps its timeout until resumed
        with contextlib.suppress(TimeoutNotFound):
            await store.complete(timeout.id)
        return True

    async def _drop(self, timeout: TimeoutRecord) -> bool:
        with contextlib.suppress(TimeoutNotFound):
            await self._engine.timeout_store.cancel(timeout.id)
        return True
