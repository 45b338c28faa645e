"""Consumers of the run-state-change and delete topics: hooks, pause retry, data deletion."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Generic, TypeVar

from .._attempts import Policy
from .._clock import Clock
from .._codec import Codec
from .._event import Event, Header
from .._execution import Executor, PoisonRun
from .._record import TypedRecord
from .._runstate import RunState
from .._writer import ErrorCounter, RecordWriter
from ._load import Ignore, load_record

__all__ = ["DeleteHandler", "HookHandler", "PauseRetryHandler", "run_state_is"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

DELETED_OBJECT = b'{"result":"deleted"}'


def run_state_is(state: RunState) -> Callable[[Event], bool]:
    """An event filter: the run_state header equals ``state``."""
    wanted = str(int(state))

    def accept(event: Event) -> bool:
        return event.headers.get(Header.RUN_STATE) == wanted

    return accept


class HookHandler(Generic[T, S]):
    """Calls the user's hook with the run's current record (at least once per event).

    A failed attempt is recorded and retried for that run alone (``Attempts``); a hook
    never pauses its run.
    """

    def __init__(
        self,
        runs: Executor[T, S],
        hook: Callable[[TypedRecord[T, S]], Awaitable[None]],
        *,
        process: str,
        policy: Policy,
    ) -> None:
        self._runs = runs
        self._store = runs.writer.store
        self._hook = hook
        self._process = process
        self._policy = policy

    async def __call__(self, event: Event) -> None:
        record = await load_record(self._store, event)
        try:
            typed = self._runs.typed_record(record)
        except PoisonRun:
            raise Ignore("unable to unmarshal object") from None
        attempts = self._runs.attempts
        try:
            await attempts.run(record.run_id, partial(self._hook, typed), self._policy.timeout)
        except Exception as exc:
            await attempts.failed(
                record, exc, process=self._process, what="hook", policy=self._policy
            )


class PauseRetryHandler:
    """Resumes a run still paused ``resume_after`` seconds after it was paused."""

    def __init__(
        self, writer: RecordWriter, errors: ErrorCounter, clock: Clock, resume_after: float
    ) -> None:
        self._writer = writer
        self._errors = errors
        self._clock = clock
        self._resume_after = timedelta(seconds=resume_after)

    async def __call__(self, event: Event) -> None:
        writer = self._writer
        record = await load_record(writer.store, event)
        if record.run_state is not RunState.PAUSED:
            raise Ignore("record not paused")
        if record.updated_at > self._clock.now() - self._resume_after:
            raise Ignore("paused too recently")
        self._errors.clear_run(record.run_id)
        await writer.write(writer.update(record, run_state=RunState.RUNNING, reason=""))


class DeleteHandler(Generic[T]):
    """Replaces a run's object (custom scrub or ``{"result":"deleted"}``): DataDeleted."""

    def __init__(
        self,
        writer: RecordWriter,
        codec: Codec[T],
        custom: Callable[[T], Awaitable[T | None]] | None,
    ) -> None:
        self._writer = writer
        self._codec = codec
        self._custom = custom

    async def __call__(self, event: Event) -> None:
        writer = self._writer
        record = await load_record(writer.store, event)
        if record.run_state is not RunState.REQUESTED_DATA_DELETED:
            raise Ignore("record not awaiting deletion")
        if self._custom is None:
            replacement = DELETED_OBJECT
        else:
            obj = self._codec.decode(record.object)
            scrubbed = await self._custom(obj)
            replacement = self._codec.encode(obj if scrubbed is None else scrubbed)
        await writer.write(writer.update(record, run_state=RunState.DATA_DELETED, obj=replacement))
