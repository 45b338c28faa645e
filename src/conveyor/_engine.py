"""What every part of a running workflow shares: adapters, codec, and how writes are built."""

from __future__ import annotations

import enum
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._clock import Clock
from ._codec import Codec, DecodeError
from ._graph import Graph
from ._metrics import Metrics
from ._options import Options, OutboxOptions
from ._protocols import EventStreamer, Logger, RecordStore, RecordWrite, RoleScheduler
from ._record import SAVE_AND_REPEAT, SKIP, Marker, Meta, Record, Run
from ._runstate import RunState
from ._sync import ThreadRunner
from ._tracing import make_tracing
from ._writer import PAUSE_REASON_ERRORS, ErrorCounter, RecordWriter

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._builder import CallbackSpec, ConnectorSpec, DeleteFn, HookFn, StepSpec, TimeoutSpec
    from ._protocols import TimeoutStore

__all__ = ["PAUSE_REASON_ERRORS", "Engine", "ErrorCounter", "PoisonRun", "WorkflowConfig"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_PACKAGE_DIR = os.path.dirname(__file__)


@dataclass(frozen=True, slots=True)
class WorkflowConfig(Generic[T, S]):
    """Everything ``Builder.build`` decided."""

    name: str
    object_type: type[T]
    status_type: type[S]
    graph: Graph
    steps: dict[int, StepSpec[T, S]]
    callbacks: dict[int, list[CallbackSpec[T, S]]]
    hooks: dict[RunState, HookFn[T, S]]
    timeouts: dict[int, list[TimeoutSpec[T, S]]]
    timeout_options: dict[int, Options]
    connectors: list[ConnectorSpec]
    default_options: Options
    pause_retry: float | None
    custom_delete: DeleteFn[T] | None
    debug: bool
    outbox: OutboxOptions
    max_threads: int
    metrics_registry: CollectorRegistry | None = None
    tracing: bool = False
    tracer_provider: Any = None


class PoisonRun(Exception):
    """A run that can never make progress as it is: the engine pauses it with this reason."""


class Engine(RecordWriter, Generic[T, S]):
    """Builds records and writes for one workflow; used by its consumers and its API."""

    metrics: Metrics
    logger: Logger

    def __init__(
        self,
        config: WorkflowConfig[T, S],
        *,
        streamer: EventStreamer,
        record_store: RecordStore,
        role_scheduler: RoleScheduler,
        timeout_store: TimeoutStore | None,
        clock: Clock,
        logger: Logger,
    ) -> None:
        self._status_names = {int(m): m.name for m in config.status_type}
        super().__init__(
            record_store,
            clock,
            status_name=self.status_name,
            metrics=Metrics(config.name, config.metrics_registry),
            tracing=make_tracing(config.tracing, config.tracer_provider),
            logger=logger,
            debug=config.debug,
        )
        self.config = config
        self.name = config.name
        self.graph = config.graph
        self.streamer = streamer
        self.roles = role_scheduler
        self.timeout_store = timeout_store
        self.codec: Codec[T] = Codec(config.object_type)
        self.threads = ThreadRunner(config.max_threads, name=f"conveyor-{config.name}")
        self.status_type = config.status_type

    # ------------------------------------------------------------------ naming

    def status_name(self, status: int) -> str:
        name = self._status_names.get(status)
        return name if name is not None else str(status)

    # ------------------------------------------------------------------ writes

    def new_run(self, foreign_id: str, status: int, obj: bytes) -> RecordWrite:
        now = self.clock.now()
        record = Record(
            workflow_name=self.name,
            foreign_id=foreign_id,
            run_id=str(uuid.uuid4()),
            run_state=RunState.INITIATED,
            status=status,
            object=obj,
            created_at=now,
            updated_at=now,
            meta=Meta(
                status_description=self.status_name(status),
                version=1,
                trace_origin=_trace_origin(),
                reached=(status,),
            ),
        )
        return RecordWrite(record, self.outbox_event(record), 0)

    async def run_user_code(
        self,
        record: Record,
        fn: Callable[..., Awaitable[Any]],
        extra: tuple[Any, ...],
        *,
        process: str,
        pause_after: int,
    ) -> RecordWrite | None:
        """Call a step-like function on ``record`` and return the write for its result.

        A poison run (undecodable object, unknown status, invalid result) is paused with
        the reason. An error is counted; at ``pause_after`` identical errors the run is
        paused, otherwise the error propagates (the caller retries with backoff).
        """
        try:
            run = self.to_run(record)
        except PoisonRun as exc:
            return self.pause_write(record, str(exc))
        try:
            result = await fn(run, *extra)
        except Exception as exc:
            if pause_after > 0 and self.errors.add(exc, process, record.run_id) >= pause_after:
                self.errors.clear(exc, process, record.run_id)
                return self.pause_write(record, PAUSE_REASON_ERRORS)
            raise
        try:
            return self.result_write(record, run, result)
        except PoisonRun as exc:
            return self.pause_write(record, str(exc))

    # ------------------------------------------------------------------ typed views

    def to_run_unchecked(self, record: Record) -> Run[T, S]:
        """Decode a record as stored, for callers of ``wait``/``lookup``.

        Raises ``DecodeError`` (a ``ValueError``) if the object no longer decodes.
        """
        try:
            return self._typed(record, record.run_state)
        except PoisonRun as exc:
            raise DecodeError(str(exc)) from exc

    def to_run(self, record: Record) -> Run[T, S]:
        """Decode a record for user code; INITIATED shows as RUNNING (nothing is written).

        Raises ``PoisonRun`` when the object no longer decodes or the status is unknown.
        """
        run_state = record.run_state
        if run_state is RunState.INITIATED:
            run_state = RunState.RUNNING
        return self._typed(record, run_state)

    def _typed(self, record: Record, run_state: RunState) -> Run[T, S]:
        try:
            status = self.status_type(record.status)
        except ValueError:
            raise PoisonRun(
                f"status {record.status} is not a member of {self.status_type.__name__}"
            ) from None
        try:
            obj = self.codec.decode(record.object)
        except DecodeError as exc:
            raise PoisonRun(f"object no longer decodes: {exc}") from exc
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

    def result_write(self, record: Record, run: Run[T, S], result: Any) -> RecordWrite | None:
        """The write for what a step or callback returned, or ``None`` to write nothing.

        Raises ``PoisonRun`` for a result that is not an allowed status or a marker.
        """
        if result is SKIP:
            return None
        if isinstance(result, Marker):
            obj = self._encode(run)
            if result is SAVE_AND_REPEAT or result.kind == "save_and_repeat":
                return self.update(record, run_state=RunState.RUNNING, obj=obj)
            if result.kind == "pause":
                return self.update(record, run_state=RunState.PAUSED, obj=obj, reason=result.reason)
            if result.kind == "cancel":
                return self.update(
                    record, run_state=RunState.CANCELLED, obj=obj, reason=result.reason
                )
            if result.kind == "skip":
                return None
            raise PoisonRun(f"unknown marker {result!r}")
        if isinstance(result, bool) or not isinstance(result, int):
            raise PoisonRun(
                f"step returned {result!r}: expected a {self.status_type.__name__} or a marker"
            )
        nxt = int(result)
        if nxt == 0:
            return None
        if not self.graph.allows(record.status, nxt):
            allowed = ", ".join(self.status_name(d) for d in self.graph.destinations(record.status))
            raise PoisonRun(
                f"invalid transition from {self.status_name(record.status)} to "
                f"{self.status_name(nxt)} (allowed: {allowed or 'none'})"
            )
        run_state = RunState.COMPLETED if self.graph.is_terminal(nxt) else RunState.RUNNING
        return self.update(record, status=nxt, run_state=run_state, obj=self._encode(run))

    def _encode(self, run: Run[T, S]) -> bytes:
        try:
            return self.codec.encode(run.object)
        except TypeError as exc:
            raise PoisonRun(str(exc)) from exc


def _trace_origin(limit: int = 5) -> str:
    """``file:line in function`` of the caller's frames outside conveyor and asyncio."""
    lines: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(lines) < limit:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and "asyncio" not in filename:
            lines.append(f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        frame = frame.f_back  # type: ignore[assignment]
    return "\n".join(lines)
