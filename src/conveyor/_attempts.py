"""Attempts of user code on a run: their time limit, and what a failure leads to.

A failed attempt (an error, or ``attempt_timeout`` passed) is recorded beside the run when
the store ``RecordsFailures``: the run is retried alone after a backoff (``AttemptFailed``
carries the delay) while its consumer goes on, and ``pause_after_err_count`` counts the
failures recorded at the run's current version, so a resume (a new version, from any
process) starts a new count. A store without the capability keeps the original's
behaviour: identical errors are counted in this process, and the error goes to the
process, which backs off and has the event delivered again.

A sync attempt in a thread cannot be cancelled: past its time limit it is abandoned (its
result is thrown away if it ever returns), counted by ``ThreadRunner.abandoned``, and its
run is not attempted again in this process while the thread lives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ._capabilities import Failure, RecordsFailures
from ._options import ResolvedOptions
from ._protocols import Logger, RecordWrite
from ._record import Record
from ._supervisor import backoff_delay
from ._sync import AbandonSlot, abandon_threads
from ._writer import PAUSE_REASON_ERRORS, ErrorCounter, RecordWriter

__all__ = [
    "AttemptFailed",
    "AttemptStillRunning",
    "AttemptTimedOut",
    "Attempts",
    "Policy",
    "pause_reason",
]

R = TypeVar("R")
Thread = asyncio.Future[Any]  # Any: an abandoned thread's result is never read

_MESSAGE_LIMIT = 2000


class AttemptFailed(Exception):
    """A failed attempt was recorded: retry this run alone in ``delay`` seconds."""

    def __init__(self, cause: BaseException, delay: float, attempt: int) -> None:
        super().__init__(f"attempt {attempt} failed: {describe(cause)}")
        self.cause = cause
        self.delay = delay
        self.attempt = attempt


class AttemptTimedOut(Exception):
    """An attempt ran longer than its ``attempt_timeout``."""


class AttemptStillRunning(Exception):
    """The run's previous attempt is still running in an abandoned thread."""


def describe(exc: BaseException) -> str:
    """``TypeName: message`` of an error, bounded in length."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def pause_reason(attempts: int, exc: BaseException) -> str:
    """The reason a run paused by ``pause_after_err_count`` gets: the original's words, the
    count, and the error."""
    return f"{PAUSE_REASON_ERRORS} after {attempts} failed attempts; last error: {describe(exc)}"


@dataclass(frozen=True, slots=True)
class Policy:
    """What a process does with its attempts: time limit, backoff base, pause threshold."""

    pause_after: int = 0
    err_backoff: float = 1.0
    timeout: float = 0.0
    can_pause: bool = True
    """False for hooks: the run's state is not theirs to change."""

    @classmethod
    def of(cls, options: ResolvedOptions, *, can_pause: bool = True) -> Policy:
        return cls(
            options.pause_after_err_count,
            options.err_backoff,
            options.attempt_timeout,
            can_pause,
        )


class Attempts:
    """Runs attempts under their time limit and decides what a failure leads to."""

    def __init__(self, writer: RecordWriter, logger: Logger | None) -> None:
        self._writer = writer
        store = writer.store
        self.failures: RecordsFailures | None = (
            store if isinstance(store, RecordsFailures) else None
        )
        self._logger = logger
        self.errors = ErrorCounter()
        self._threads: dict[str, Thread] = {}

    # ------------------------------------------------------------------ running

    async def run(self, run_id: str, call: Callable[[], Awaitable[R]], timeout: float) -> R:
        """Await ``call()``; past ``timeout`` seconds (0: no limit) raise ``AttemptTimedOut``."""
        alive = self._threads.get(run_id)
        if alive is not None:
            if not alive.done():
                raise AttemptStillRunning(
                    "the previous attempt is still running in a thread (it passed its "
                    "attempt_timeout and was abandoned)"
                )
            del self._threads[run_id]
        if timeout <= 0:
            return await call()
        slot = AbandonSlot()
        token = abandon_threads.set(slot)
        try:
            async with asyncio.timeout(timeout) as limit:
                return await call()
        except TimeoutError:
            if limit.expired():
                raise AttemptTimedOut(
                    f"the attempt took longer than its attempt_timeout ({timeout:g}s)"
                ) from None
            raise
        finally:
            abandon_threads.reset(token)
            thread = slot.future
            if thread is not None and not thread.done():
                self._threads[run_id] = thread
                thread.add_done_callback(self._forget(run_id, thread))

    def _forget(self, run_id: str, thread: Thread) -> Callable[[Thread], None]:
        def forget(_: Thread) -> None:
            if self._threads.get(run_id) is thread:
                del self._threads[run_id]

        return forget

    # ------------------------------------------------------------------ failures

    async def failed(
        self, record: Record, exc: Exception, *, process: str, what: str, policy: Policy
    ) -> RecordWrite:
        """Handle a failed attempt on ``record``: the pause write when the run has failed
        ``pause_after`` times at this version; otherwise raise ``AttemptFailed`` (the
        failure recorded, a retry due) or, without ``RecordsFailures``, ``exc`` itself."""
        pause_after = policy.pause_after if policy.can_pause else 0
        failures = self.failures
        if failures is None:
            if pause_after > 0 and self.errors.add(exc, process, record.run_id) >= pause_after:
                self.errors.clear(exc, process, record.run_id)
                return self._writer.pause_write(record, pause_reason(pause_after, exc))
            raise exc
        attempt = len(await failures.failures(record.run_id, record.meta.version)) + 1
        pausing = 0 < pause_after <= attempt
        delay = 0.0 if pausing else backoff_delay(policy.err_backoff, attempt)
        wall = datetime.now(UTC)
        await failures.record_failure(
            Failure(
                workflow_name=record.workflow_name,
                run_id=record.run_id,
                version=record.meta.version,
                attempt=attempt,
                process=process,
                error_type=type(exc).__name__,
                message=describe(exc),
                failed_at=self._writer.clock.now(),
                next_attempt_at=None if pausing else wall + timedelta(seconds=delay),
            )
        )
        self._log(record, exc, what, process, attempt, delay, pausing)
        if pausing:
            return self._writer.pause_write(record, pause_reason(attempt, exc))
        raise AttemptFailed(exc, delay, attempt) from exc

    def _log(
        self,
        record: Record,
        exc: Exception,
        what: str,
        process: str,
        attempt: int,
        delay: float,
        pausing: bool,
    ) -> None:
        logger = self._logger
        if logger is None:
            return
        outcome = "pausing the run" if pausing else f"next attempt in {delay:.3g}s"
        # The first failure of a run at a version logs its traceback; later ones a line.
        logger.error(
            f"{what} failed ({outcome})",
            exc if attempt == 1 else None,
            workflow=record.workflow_name,
            foreign_id=record.foreign_id,
            run_id=record.run_id,
            status=record.meta.status_description or str(record.status),
            version=record.meta.version,
            attempt=attempt,
            process=process,
            error=describe(exc),
        )
