"""Between records and user code: typed views of runs, and writes for what user code returns."""

from __future__ import annotations

import enum
from functools import partial
from typing import Generic, TypeVar

from ._attempts import Attempts, Policy
from ._codec import Codec, DecodeError
from ._definition import Definition
from ._markers import SKIP, Cancel, Pause, SaveAndRepeat, Skip
from ._protocols import RecordWrite
from ._record import Record, Run, TypedRecord
from ._runstate import RunState
from ._types import AsyncStep, StepResult
from ._writer import ErrorCounter, RecordWriter

__all__ = ["Executor", "PoisonRun"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


class PoisonRun(Exception):
    """A run that can never make progress as it is: the engine pauses it with this reason."""


class Executor(Generic[T, S]):
    """Decodes records for user code and turns its results into compare-and-set writes.

    ``errors`` counts identical errors per run and process (``pause_after_err_count``).
    """

    def __init__(self, definition: Definition[T, S], writer: RecordWriter) -> None:
        self.definition = definition
        self.writer = writer
        self.codec: Codec[T] = Codec(definition.object_type)
        self.attempts = Attempts(writer, writer.logger)
        self.errors: ErrorCounter = self.attempts.errors
        self._status_type = definition.status_type
        self._graph = definition.graph

    # ------------------------------------------------------------------ typed views

    def view(self, record: Record) -> Run[T, S]:
        """The run as stored, for callers of ``wait``/``lookup`` and control actions.

        Raises ``DecodeError`` (a ``WorkflowError`` and ``ValueError``, carrying the
        record) if the object no longer decodes or the status is not in the enum.
        """
        try:
            return self._typed(record, record.run_state)
        except PoisonRun as exc:
            raise DecodeError(str(exc), record) from exc

    def to_run(self, record: Record) -> Run[T, S]:
        """The run for user code: Initiated shows as Running (nothing is written).

        Raises ``PoisonRun`` when the object no longer decodes or the status is unknown.
        """
        run_state = record.run_state
        if run_state is RunState.INITIATED:
            run_state = RunState.RUNNING
        return self._typed(record, run_state)

    def typed_record(self, record: Record) -> TypedRecord[T, S]:
        """The record for hooks (raises ``PoisonRun`` like ``to_run``)."""
        status, obj = self._decode(record)
        return TypedRecord(
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

    def _decode(self, record: Record) -> tuple[S, T]:
        try:
            status = self._status_type(record.status)
        except ValueError:
            raise PoisonRun(
                f"status {record.status} is not a member of {self._status_type.__name__}"
            ) from None
        try:
            obj = self.codec.decode(record.object)
        except DecodeError as exc:
            raise PoisonRun(f"object no longer decodes: {exc}") from exc
        return status, obj

    def _typed(self, record: Record, run_state: RunState) -> Run[T, S]:
        status, obj = self._decode(record)
        return Run(
            record.workflow_name,
            record.foreign_id,
            record.run_id,
            run_state,
            status,
            obj,
            record.created_at,
            record.updated_at,
            record.meta,
        )

    # ------------------------------------------------------------------ results

    async def call(
        self,
        record: Record,
        fn: AsyncStep[T, S],
        *,
        process: str,
        policy: Policy,
        what: str = "step",
    ) -> RecordWrite | Skip:
        """Call a step-like function on ``record`` and return the write for its result
        (``SKIP`` when it chose to write nothing).

        A poison run (undecodable object, unknown status, invalid result) is paused with
        the reason. A failed attempt (an error, or past ``policy.timeout``) goes to
        ``Attempts.failed``: the pause write at ``policy.pause_after`` failures, else
        ``AttemptFailed`` (retry this run alone) or the error itself.
        """
        try:
            run = self.to_run(record)
        except PoisonRun as exc:
            return self.writer.pause_write(record, str(exc))
        try:
            result = await self.attempts.run(record.run_id, partial(fn, run), policy.timeout)
        except Exception as exc:
            return await self.attempts.failed(
                record, exc, process=process, what=what, policy=policy
            )
        try:
            return self.result_write(record, run, result)
        except PoisonRun as exc:
            return self.writer.pause_write(record, str(exc))

    def result_write(
        self, record: Record, run: Run[T, S], result: StepResult[S]
    ) -> RecordWrite | Skip:
        """The write for what a step or callback returned (``SKIP``: write nothing).

        Raises ``PoisonRun`` for a result that is not an allowed status or a marker (user
        code is typed to return one, but is not checked at run time by Python).
        """
        update = self.writer.update
        if isinstance(result, bool) or not isinstance(result, int):  # statuses: the hot path
            match result:
                case Skip():
                    return SKIP
                case SaveAndRepeat():
                    return update(record, run_state=RunState.RUNNING, obj=self._encode(run))
                case Pause(reason=reason):
                    obj = self._encode(run)
                    return update(record, run_state=RunState.PAUSED, obj=obj, reason=reason)
                case Cancel(reason=reason):
                    obj = self._encode(run)
                    return update(record, run_state=RunState.CANCELLED, obj=obj, reason=reason)
            raise PoisonRun(
                f"step returned {result!r}: expected a {self._status_type.__name__} or a marker"
            )
        nxt = int(result)
        if nxt == 0:
            return SKIP
        graph = self._graph
        name = self.definition.status_name
        if not graph.allows(record.status, nxt):
            allowed = ", ".join(name(d) for d in graph.destinations(record.status))
            raise PoisonRun(
                f"invalid transition from {name(record.status)} to {name(nxt)} "
                f"(allowed: {allowed or 'none'})"
            )
        run_state = RunState.COMPLETED if graph.is_terminal(nxt) else RunState.RUNNING
        # A move to a new status leaves no reason behind (an operator's "retry requested"
        # explains the version it wrote, not the ones after it; the history keeps it).
        return update(record, status=nxt, run_state=run_state, obj=self._encode(run), reason="")

    def _encode(self, run: Run[T, S]) -> bytes:
        try:
            return self.codec.encode(run.object)
        except TypeError as exc:
            raise PoisonRun(str(exc)) from exc
