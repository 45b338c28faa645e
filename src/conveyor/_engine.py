"""What every part of a running workflow shares: adapters, codec, and how writes are built."""

from __future__ import annotations

import enum
import itertools
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._clock import Clock
from ._codec import Codec, DecodeError
from ._errors import InvalidTransition, VersionConflict, WorkflowError, WorkflowInProgress
from ._event import Header, OutboxEvent, topic_for
from ._graph import Graph
from ._metrics import Metrics
from ._options import Options, OutboxOptions
from ._protocols import EventStreamer, Logger, RecordStore, RecordWrite, RoleScheduler
from ._record import SAVE_AND_REPEAT, SKIP, Marker, Meta, Record, Run
from ._runstate import RunState
from ._sync import ThreadRunner
from ._tracing import make_tracing

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._builder import CallbackSpec, ConnectorSpec, DeleteFn, HookFn, StepSpec, TimeoutSpec
    from ._protocols import TimeoutStore

__all__ = ["PAUSE_REASON_ERRORS", "Engine", "ErrorCounter", "PoisonRun", "WorkflowConfig"]

PAUSE_REASON_ERRORS = "max error retry threshold hit - automatically paused"

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


class ErrorCounter:
    """Counts identical errors per (message, process, run), in memory per instance."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}

    def add(self, exc: BaseException, process: str, run_id: str) -> int:
        key = (f"{type(exc).__name__}: {exc}", process, run_id)
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        return n

    def clear(self, exc: BaseException, process: str, run_id: str) -> None:
        self._counts.pop((f"{type(exc).__name__}: {exc}", process, run_id), None)

    def clear_run(self, run_id: str) -> None:
        for key in [k for k in self._counts if k[2] == run_id]:
            del self._counts[key]


class Engine(Generic[T, S]):
    """Builds records and writes for one workflow; used by its consumers and its API."""

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
        self.config = config
        self.name = config.name
        self.graph = config.graph
        self.streamer = streamer
        self.store = record_store
        self.roles = role_scheduler
        self.timeout_store = timeout_store
        self.clock = clock
        self.logger = logger
        self.debug = config.debug
        self.codec: Codec[T] = Codec(config.object_type)
        self.threads = ThreadRunner(config.max_threads, name=f"conveyor-{config.name}")
        self.status_type = config.status_type
        self._status_names = {int(m): m.name for m in config.status_type}
        self._outbox_prefix = f"outbox-id-{uuid.uuid4().hex[:16]}-"
        self._outbox_seq = itertools.count(1)
        self.errors = ErrorCounter()
        self.metrics = Metrics(config.name, config.metrics_registry)
        self.tracing = make_tracing(config.tracing, config.tracer_provider)
        self._topics: dict[tuple[RunState, int], str] = {}

    # ------------------------------------------------------------------ naming

    def status_name(self, status: int) -> str:
        name = self._status_names.get(status)
        return name if name is not None else str(status)

    # ------------------------------------------------------------------ writes

    def outbox_event(self, record: Record) -> OutboxEvent:
        """The event a write of ``record`` publishes (routed by its run state)."""
        key = (record.run_state, record.status)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = topic_for(self.name, record.run_state, record.status)
        headers: dict[str, str] = {
            Header.WORKFLOW_NAME: record.workflow_name,
            Header.FOREIGN_ID: record.foreign_id,
            Header.TOPIC: topic,
            Header.RUN_ID: record.run_id,
            Header.RUN_STATE: str(int(record.run_state)),
            Header.RECORD_VERSION: str(record.meta.version),
            Header.EVENT_TIME: record.updated_at.isoformat(),
        }
        if self.tracing.enabled:
            self.tracing.inject(headers)
        return OutboxEvent(
            id=f"{self._outbox_prefix}{next(self._outbox_seq)}",
            workflow_name=record.workflow_name,
            run_id=record.run_id,
            type=record.status,
            headers=headers,
            created_at=record.updated_at,
        )

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
            ),
        )
        return RecordWrite(record, self.outbox_event(record), 0)

    def update(
        self,
        prev: Record,
        *,
        status: int | None = None,
        run_state: RunState | None = None,
        obj: bytes | None = None,
        reason: str | None = None,
    ) -> RecordWrite:
        """The write that replaces ``prev`` (compare-and-set on its version)."""
        new_status = prev.status if status is None else status
        m = prev.meta
        record = Record(
            workflow_name=prev.workflow_name,
            foreign_id=prev.foreign_id,
            run_id=prev.run_id,
            run_state=prev.run_state if run_state is None else run_state,
            status=new_status,
            object=prev.object if obj is None else obj,
            created_at=prev.created_at,
            updated_at=self.clock.now(),
            meta=Meta(
                run_state_reason=m.run_state_reason if reason is None else reason,
                status_description=self.status_name(new_status),
                version=m.version + 1,
                trace_origin=m.trace_origin,
            ),
        )
        return RecordWrite(record, self.outbox_event(record), m.version, prev.run_state)

    async def write(self, write: RecordWrite) -> None:
        """Store one write (raises ``VersionConflict``/``WorkflowInProgress``)."""
        await self.store.store(write)
        self._count_change(write)

    async def write_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        """Store several writes with a compare-and-set outcome each."""
        if len(writes) == 1:
            try:
                await self.write(writes[0])
            except (VersionConflict, WorkflowInProgress) as exc:
                return [exc]
            return [None]
        outcomes = await self.store.store_many(writes)
        for write, outcome in zip(writes, outcomes, strict=True):
            if outcome is None:
                self._count_change(write)
        return outcomes

    def _count_change(self, write: RecordWrite) -> None:
        previous = write.previous_run_state
        current = write.record.run_state
        if self.debug:
            r = write.record
            self.logger.debug(
                "record written",
                workflow=self.name,
                run_id=r.run_id,
                foreign_id=r.foreign_id,
                status=self.status_name(r.status),
                run_state=str(current),
                version=r.meta.version,
            )
        if previous is not current:
            self.metrics.run_state_change(str(previous), str(current))

    def pause_write(self, record: Record, reason: str) -> RecordWrite:
        """Pause ``record`` as stored (for poison runs and repeated errors)."""
        return self.update(record, run_state=RunState.PAUSED, reason=reason)

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

    def check_transition(self, record: Record, to: RunState) -> None:
        if not record.run_state.can_transition_to(to):
            raise InvalidTransition(f"invalid RunState: from {record.run_state} | to {to}")


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
