"""The parts of one running workflow, wired together once.

``Engine`` is only a holder: the planner reads it to build each background process and
hands every consumer just the parts it uses (a store, the writer, the executor, ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from ._clock import Clock
from ._definition import Definition
from ._execution import Executor
from ._metrics import Metrics
from ._protocols import EventStreamer, Logger, RecordStore, RoleScheduler, TimeoutStore
from ._sync import ThreadRunner
from ._tracing import Tracing, make_tracing
from ._writer import RecordWriter

__all__ = ["Engine", "Telemetry"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Where background processes report: metrics, spans and logs."""

    metrics: Metrics
    tracing: Tracing
    logger: Logger
    debug: bool


class Engine(Generic[T, S]):
    """A workflow's definition with its adapters, clock, writer, executor and threads."""

    def __init__(
        self,
        definition: Definition[T, S],
        *,
        streamer: EventStreamer,
        store: RecordStore,
        roles: RoleScheduler,
        timeouts: TimeoutStore | None,
        clock: Clock,
        logger: Logger,
    ) -> None:
        d = definition
        self.definition = d
        self.name = d.name
        self.streamer = streamer
        self.store = store
        self.roles = roles
        self.timeouts = timeouts
        self.clock = clock
        self.telemetry = Telemetry(
            Metrics(d.name, d.metrics_registry),
            make_tracing(d.tracing, d.tracer_provider),
            logger,
            d.debug,
        )
        self.writer = RecordWriter(
            store,
            clock,
            status_name=d.status_name,
            metrics=self.telemetry.metrics,
            tracing=self.telemetry.tracing,
            logger=logger,
            debug=d.debug,
        )
        self.runs: Executor[T, S] = Executor(d, self.writer)
        self.threads = ThreadRunner(d.max_threads, name=f"conveyor-{d.name}")
        threads = self.threads
        self.telemetry.metrics.count_abandoned(lambda: threads.abandoned)
