"""Builder: declare a workflow's statuses, steps, callbacks and hooks, then build it."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._errors import BuildError
from ._graph import Graph
from ._options import Duration, Options, OutboxOptions
from ._record import Run, TypedRecord
from ._runstate import RunState

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._clock import Clock
    from ._connector import ConnectorConstructor, ConnectorEvent
    from ._protocols import EventStreamer, Logger, RecordStore, RoleScheduler, TimeoutStore
    from ._workflow import Workflow

__all__ = ["Builder", "StepBuilder"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

StepResult = Any  # S | Marker | int, checked at run time (user code may return anything)
StepFn = Callable[[Run[T, S]], Awaitable[StepResult] | StepResult]
CallbackFn = Callable[[Run[T, S], bytes], Awaitable[StepResult] | StepResult]
HookFn = Callable[[TypedRecord[T, S]], Awaitable[None] | None]
TimerFn = Callable[[Run[T, S], datetime], Awaitable[datetime | None] | datetime | None]
TimeoutFn = Callable[[Run[T, S], datetime], Awaitable[StepResult] | StepResult]
DeleteFn = Callable[[T], Awaitable[T | None] | T | None]

_RESERVED = (0, -1, -2)


@dataclass(slots=True)
class StepSpec(Generic[T, S]):
    status: int
    fn: StepFn[T, S]
    destinations: tuple[int, ...]
    options: Options = field(default_factory=Options)


@dataclass(slots=True)
class CallbackSpec(Generic[T, S]):
    status: int
    fn: CallbackFn[T, S]
    destinations: tuple[int, ...]


@dataclass(slots=True)
class TimeoutSpec(Generic[T, S]):
    status: int
    index: int
    timer: TimerFn[T, S]
    fn: TimeoutFn[T, S]
    destinations: tuple[int, ...]


class TimeoutBuilder:
    """Returned by ``Builder.add_timeout``; sets the options of that status's timeouts."""

    __slots__ = ("_builder", "_status")

    def __init__(self, builder: Builder[Any, Any], status: int) -> None:
        self._builder = builder
        self._status = status

    def with_options(
        self,
        *,
        polling_frequency: Duration | None = None,
        err_backoff: Duration | None = None,
        lag_alert: Duration | None = None,
        pause_after_err_count: int | None = None,
        parallel_count: int | None = None,
        consume_lag: Duration | None = None,
    ) -> TimeoutBuilder:
        """Override defaults field by field for this status's timeout processes.

        Timeouts cannot be sharded or lagged: ``parallel_count``/``consume_lag`` raise.
        """
        if parallel_count is not None:
            raise BuildError("Cannot configure parallel timeout")
        if consume_lag is not None:
            raise BuildError("Cannot configure consume lag on timeout")
        given = Options(
            polling_frequency=polling_frequency,
            err_backoff=err_backoff,
            lag_alert=lag_alert,
            pause_after_err_count=pause_after_err_count,
        )
        options = self._builder._timeout_options
        options[self._status] = given.over(options.get(self._status, Options()))
        return self


@dataclass(slots=True)
class ConnectorSpec:
    name: str
    constructor: Any
    fn: Callable[..., Any]
    options: Options = field(default_factory=Options)


class ConnectorBuilder:
    """Returned by ``Builder.add_connector``; sets that connector's options."""

    __slots__ = ("_spec",)

    def __init__(self, spec: ConnectorSpec) -> None:
        self._spec = spec

    def with_options(
        self,
        *,
        parallel_count: int | None = None,
        err_backoff: Duration | None = None,
        lag_alert: Duration | None = None,
        consume_lag: Duration | None = None,
    ) -> ConnectorBuilder:
        """Override defaults field by field (shards, backoff, lag)."""
        given = Options(
            parallel_count=parallel_count,
            err_backoff=err_backoff,
            lag_alert=lag_alert,
            consume_lag=consume_lag,
        )
        self._spec.options = given.over(self._spec.options)
        return self


class StepBuilder:
    """Returned by ``Builder.add_step``; sets that step's options."""

    __slots__ = ("_spec",)

    def __init__(self, spec: StepSpec[Any, Any]) -> None:
        self._spec = spec

    def with_options(
        self,
        *,
        parallel_count: int | None = None,
        polling_frequency: Duration | None = None,
        err_backoff: Duration | None = None,
        lag_alert: Duration | None = None,
        consume_lag: Duration | None = None,
        pause_after_err_count: int | None = None,
    ) -> StepBuilder:
        """Override defaults field by field; later calls override earlier ones the same way."""
        given = Options(
            parallel_count=parallel_count,
            polling_frequency=polling_frequency,
            err_backoff=err_backoff,
            lag_alert=lag_alert,
            consume_lag=consume_lag,
            pause_after_err_count=pause_after_err_count,
        )
        self._spec.options = given.over(self._spec.options)
        return self


class Builder(Generic[T, S]):
    """Declares a workflow: ``Builder("name", ObjectType, StatusEnum)``.

    ``ObjectType`` is a dataclass, msgspec Struct, pydantic model or ``dict``;
    ``StatusEnum`` is an ``enum.IntEnum`` whose value 0 is reserved (not a status).
    """

    def __init__(self, name: str, object_type: type[T], status_type: type[S]) -> None:
        if not name or not isinstance(name, str):
            raise BuildError("workflow name must be a non-empty string")
        if not (isinstance(status_type, type) and issubclass(status_type, enum.IntEnum)):
            raise BuildError(f"status type must be an enum.IntEnum, got {status_type!r}")
        self.name = name
        self.object_type = object_type
        self.status_type = status_type
        self._graph = Graph()
        self._steps: dict[int, StepSpec[T, S]] = {}
        self._callbacks: dict[int, list[CallbackSpec[T, S]]] = {}
        self._hooks: dict[RunState, HookFn[T, S]] = {}
        self._timeouts: dict[int, list[TimeoutSpec[T, S]]] = {}
        self._connectors: dict[str, ConnectorSpec] = {}
        self._timeout_options: dict[int, Options] = {}

    # ------------------------------------------------------------------ graph

    def _edges(self, from_: S | int, to: tuple[S | int, ...], what: str) -> tuple[int, ...]:
        src = self._status(from_, "from")
        if not to:
            raise BuildError(f"{what}({from_!r}) needs at least one destination status")
        dests = tuple(self._status(t, "to") for t in to)
        for d in dests:
            self._graph.add(src, d)
        return dests

    def _status(self, value: S | int, side: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BuildError(f"status must be a member of {self.status_type.__name__}: {value!r}")
        if int(value) in _RESERVED:
            raise BuildError(f"cannot use reserved node as '{side}' node: {int(value)}")
        try:
            self.status_type(int(value))
        except ValueError:
            raise BuildError(
                f"{int(value)} is not a member of {self.status_type.__name__}"
            ) from None
        return int(value)

    def add_step(self, from_: S, fn: StepFn[T, S], *to: S) -> StepBuilder:
        """Run ``fn`` for every run that reaches ``from_``; it returns one of ``to``."""
        if not callable(fn):
            raise BuildError(f"step function for {from_!r} is not callable")
        src = self._status(from_, "from")
        if src in self._steps:
            raise BuildError(
                f"'AddStep({self.status_type(src).name},' already exists. "
                "Only one Step can be configured to consume the status"
            )
        dests = self._edges(from_, to, "add_step")
        spec: StepSpec[T, S] = StepSpec(src, fn, dests)
        self._steps[src] = spec
        return StepBuilder(spec)

    def add_callback(self, from_: S, fn: CallbackFn[T, S], *to: S) -> None:
        """Let ``Workflow.callback(foreign_id, from_, payload)`` move runs at ``from_``."""
        if not callable(fn):
            raise BuildError(f"callback function for {from_!r} is not callable")
        dests = self._edges(from_, to, "add_callback")
        src = int(from_)
        self._callbacks.setdefault(src, []).append(CallbackSpec(src, fn, dests))

    def add_timeout(
        self, from_: S, timer: TimerFn[T, S], fn: TimeoutFn[T, S], *to: S
    ) -> TimeoutBuilder:
        """When a run reaches ``from_``, ``timer(run, now)`` sets when it times out (``None``:
        no timeout); at that time ``fn(run, now)`` returns one of ``to`` (or a marker).

        Several timeouts may be added to one status; each fires on its own.
        """
        if not callable(timer) or not callable(fn):
            raise BuildError(f"timer and timeout function for {from_!r} must be callable")
        dests = self._edges(from_, to, "add_timeout")
        src = int(from_)
        specs = self._timeouts.setdefault(src, [])
        specs.append(TimeoutSpec(src, len(specs), timer, fn, dests))
        return TimeoutBuilder(self, src)

    def add_connector(
        self,
        name: str,
        constructor: ConnectorConstructor,
        fn: Callable[[Workflow[T, S], ConnectorEvent], Awaitable[None] | None],
    ) -> ConnectorBuilder:
        """Consume an outside stream: ``fn(workflow, event)`` for every event (at least once).

        Typically ``fn`` triggers or calls back a run. Events are sharded over
        ``parallel_count`` processes by a stable hash of their ID; none is dropped.
        """
        if not name:
            raise BuildError("a connector needs a name")
        if name in self._connectors:
            raise BuildError("connector names need to be unique")
        if not callable(fn):
            raise BuildError(f"connector function for {name!r} is not callable")
        spec = ConnectorSpec(name, constructor, fn)
        self._connectors[name] = spec
        return ConnectorBuilder(spec)

    # ------------------------------------------------------------------ hooks

    def on_pause(self, hook: HookFn[T, S]) -> None:
        """Call ``hook(record)`` (at least once) after a run is paused."""
        self._hooks[RunState.PAUSED] = hook

    def on_cancel(self, hook: HookFn[T, S]) -> None:
        """Call ``hook(record)`` (at least once) after a run is cancelled."""
        self._hooks[RunState.CANCELLED] = hook

    def on_complete(self, hook: HookFn[T, S]) -> None:
        """Call ``hook(record)`` (at least once) after a run completes."""
        self._hooks[RunState.COMPLETED] = hook

    # ------------------------------------------------------------------ build

    def build(
        self,
        streamer: EventStreamer,
        record_store: RecordStore,
        role_scheduler: RoleScheduler,
        *,
        timeout_store: TimeoutStore | None = None,
        clock: Clock | None = None,
        default_options: Options | None = None,
        pause_retry: Duration | None = 3600.0,
        custom_delete: DeleteFn[T] | None = None,
        logger: Logger | None = None,
        debug: bool = False,
        outbox: OutboxOptions | None = None,
        max_threads: int = 16,
        metrics_registry: CollectorRegistry | None = None,
        tracing: bool = False,
        tracer_provider: Any = None,
    ) -> Workflow[T, S]:
        """Check the graph and return a ``Workflow`` (not yet running: call ``run()``).

        ``pause_retry`` resumes paused runs after that many seconds (``None`` disables).
        ``max_threads`` bounds the pool that runs plain ``def`` user functions.
        Prometheus metrics go to ``metrics_registry`` (default: the global registry).
        ``tracing=True`` adds OpenTelemetry spans (``pip install 'conveyor[otel]'``), from
        ``tracer_provider`` or the global one.
        """
        from ._workflow import Workflow, WorkflowConfig

        if not self._graph.nodes:
            raise BuildError(f"workflow {self.name!r} has no steps or callbacks")
        if not self._graph.starting():
            raise BuildError(
                "Workflow requires at least one starting point. Please provide at least one "
                "Step or Callback that takes the WorkflowStatus of the last step to start from."
            )
        from ._options import seconds

        if self._timeouts and timeout_store is None:
            raise BuildError(
                "Cannot configure timeouts without providing TimeoutStore for workflow"
            )

        retry = seconds(pause_retry)
        if retry is not None and retry <= 0:
            raise BuildError("pause_retry must be positive seconds, or None to disable")
        if max_threads < 1:
            raise BuildError("max_threads must be at least 1")
        config: WorkflowConfig[T, S] = WorkflowConfig(
            name=self.name,
            object_type=self.object_type,
            status_type=self.status_type,
            graph=self._graph,
            steps=dict(self._steps),
            callbacks={k: list(v) for k, v in self._callbacks.items()},
            hooks=dict(self._hooks),
            timeouts={k: list(v) for k, v in self._timeouts.items()},
            timeout_options=dict(self._timeout_options),
            connectors=list(self._connectors.values()),
            default_options=default_options or Options(),
            pause_retry=retry,
            custom_delete=custom_delete,
            debug=debug,
            outbox=outbox or OutboxOptions(),
            max_threads=max_threads,
            metrics_registry=metrics_registry,
            tracing=tracing,
            tracer_provider=tracer_provider,
        )
        return Workflow(
            config,
            streamer=streamer,
            record_store=record_store,
            role_scheduler=role_scheduler,
            timeout_store=timeout_store,
            clock=clock,
            logger=logger,
        )
