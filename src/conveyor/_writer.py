"""Writing records: the compare-and-set write of a run and its outbox event.

``RecordWriter`` needs only a record store and a clock, so tools that have no workflow
definition (the command line) move runs exactly as the engine does. ``ErrorCounter``
counts a run's identical step errors (``pause_after_err_count``).
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from ._clock import Clock
from ._errors import VersionConflict, WorkflowError, WorkflowInProgress
from ._event import Header, OutboxEvent, topic_for
from ._protocols import Logger, RecordStore, RecordWrite
from ._record import Meta, Record
from ._runstate import RunState
from ._tracing import NoTracing, Tracing

__all__ = ["PAUSE_REASON_ERRORS", "ErrorCounter", "RecordWriter"]

PAUSE_REASON_ERRORS = "max error retry threshold hit - automatically paused"

_PACKAGE_DIR = os.path.dirname(__file__)


class RunStateMetrics(Protocol):
    """What the writer reports to metrics (``Metrics`` is one): each run-state change.

    A Protocol rather than ``Metrics`` itself, so the writer's public signature does not
    reach prometheus_client's partly unannotated classes (``pyright --verifytypes``).
    """

    def run_state_change(self, previous: str, current: str) -> None: ...


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


class RecordWriter:
    """Builds and stores the writes that move runs (compare-and-set on the version)."""

    def __init__(
        self,
        store: RecordStore,
        clock: Clock,
        *,
        status_name: Callable[[int], str] | None = None,
        metrics: RunStateMetrics | None = None,
        tracing: Tracing | None = None,
        logger: Logger | None = None,
        debug: bool = False,
    ) -> None:
        self.store = store
        self.clock = clock
        self._status_name = status_name or str
        self.metrics: RunStateMetrics | None = metrics
        self.tracing: Tracing = tracing or NoTracing()
        self.logger = logger
        self.debug: bool = debug and logger is not None
        self._outbox_prefix = f"outbox-id-{uuid.uuid4().hex[:16]}-"
        self._outbox_seq = itertools.count(1)
        self._topics: dict[tuple[str, RunState, int], str] = {}

    def outbox_event(self, record: Record) -> OutboxEvent:
        """The event a write of ``record`` publishes (routed by its run state)."""
        key = (record.workflow_name, record.run_state, record.status)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = topic_for(*key)
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

    def new_run(self, workflow_name: str, foreign_id: str, status: int, obj: bytes) -> RecordWrite:
        """The write that creates a run at ``status`` (Initiated, version 1)."""
        now = self.clock.now()
        record = Record(
            workflow_name=workflow_name,
            foreign_id=foreign_id,
            run_id=str(uuid.uuid4()),
            run_state=RunState.INITIATED,
            status=status,
            object=obj,
            created_at=now,
            updated_at=now,
            meta=Meta(
                status_description=self._status_name(status),
                version=1,
                trace_origin=_trace_origin(),
                reached=(status,),
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
                status_description=(
                    m.status_description
                    if new_status == prev.status and m.status_description
                    else self._status_name(new_status)
                ),
                version=m.version + 1,
                trace_origin=m.trace_origin,
                reached=m.reached if new_status in m.reached else (*m.reached, new_status),
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
        if self.debug and self.logger is not None:
            r = write.record
            self.logger.debug(
                "record written",
                workflow=r.workflow_name,
                run_id=r.run_id,
                foreign_id=r.foreign_id,
                status=r.meta.status_description,
                run_state=str(current),
                version=r.meta.version,
            )
        if previous is not current and self.metrics is not None:
            self.metrics.run_state_change(str(previous), str(current))

    def pause_write(self, record: Record, reason: str) -> RecordWrite:
        """Pause ``record`` as stored (for poison runs and repeated errors)."""
        return self.update(record, run_state=RunState.PAUSED, reason=reason)


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
