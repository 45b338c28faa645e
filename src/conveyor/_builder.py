"""Builder: declare a workflow's statuses, steps, callbacks and hooks, then build it.

The builder is the only mutable part of a definition. ``build()`` checks it and freezes a
copy (``Definition``), so changing the builder afterwards never reaches a built workflow.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic, TypeVar

from ._definition import CallbackSpec, ConnectorSpec, Definition, StepSpec, TimeoutSpec
from ._errors import BuildError
from ._graph import GraphBuilder
from ._options import Duration, Options, OutboxOptions, seconds
from ._runstate import RunState
from ._types import CallbackFn, DeleteFn, HookFn, StepFn, TimeoutFn, TimerFn
from ._workflow import Workflow

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ._clock import Clock
    from ._connector import ConnectorConstructor, ConnectorEvent
    from ._protocols import EventStreamer, Logger, RecordStore, RoleScheduler, TimeoutStore

__all__ = ["Builder", "ConnectorBuilder", "StepBuilder", "TimeoutBuilder"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_RESERVED = (0, -1, -2)


class StepBuilder(Generic[T, S]):
    """Returned by ``Builder.add_step``; sets that step's options."""

    __slots__ = ("_status", "_steps")

    def __init__(self, steps: dict[int, StepSpec[T, S]], status: int) -> None:
        self._steps = steps
        self._status = status

    def with_options(
        self,
        *,
        parallel_count: int | None = None,
        polling_frequency: Duration | None = None,
        err_backoff: Duration | None = None,
        lag_alert: Duration | None = None,
        consume_lag: Duration | None = None,
        pause_after_err_count: int | None = None,
        attempt_timeout: Duration | None = None,
    ) -> StepBuilder[T, S]:
        """Override defaults field by field; later calls override earlier ones the same way."""
        given = Options(
            parallel_count=parallel_count,
            polling_frequency=polling_frequency,
            err_backoff=err_backoff,
            lag_alert=lag_alert,
            consume_lag=consume_lag,
            pause_after_err_count=pause_after_err_count,
            attempt_timeout=attempt_timeout,
        )
        spec = self._steps[self._status]
        self._steps[self._status] = dataclasses.replace(spec, options=given.over(spec.options))
        return self


class TimeoutBuilder:
    """Returned by ``Builder.add_timeout``; sets the options of that status's timeouts."""

    __slots__ = ("_options", "_status")

    def __init__(self, options: dict[int, Options], status: int) -> None:
        self._options = options
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
        attempt_timeout: Duration | None = None,
    ) -> TimeoutBuilder:
        """Override defaults field by field for this status's timeout processes.

        Timeouts cannot be sharded or lagged: ``parallel_count``/``consume_lag`` raise.
        """
        if parallel_count is not None:
            raise BuildError("timeouts cannot run in parallel: parallel_count is not allowed")
        if consume_lag is not None:
            raise BuildError("timeouts cannot have a consume lag: consume_lag is not allowed")
        given = Options(
            polling_frequency=polling_frequency,
            err_backoff=err_backoff,
            lag_alert=lag_alert,
            pause_after_err_count=pause_after_err_count,
            attempt_timeout=attempt_timeout,
        )
        self._options[self._status] = given.over(self._options.get(self._status, Options()))
        return self


class ConnectorBuilder:
    """Returned by ``Builder.add_connector``; sets that connector's options."""

    __slots__ = ("_connectors", "_name")

    def __init__(self, connectors: dict[str, ConnectorSpec], name: str) -> None:
        self._connectors = connectors
        self._name = name

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
        spec = self._connectors[self._name]
        self._connectors[self._name] = dataclasses.replace(spec, options=given.over(spec.options))
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
        self._graph = GraphBuilder()
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
            raise BuildError(
                f"{int(value)} is reserved and cannot be a '{side}' status "
                "(0 is no status; use values from 1)"
            )
        try:
            self.status_type(int(value))
        except ValueError:
            raise BuildError(
                f"{int(value)} is not a member of {self.status_type.__name__}"
            ) from None
        return int(value)

    def add_step(self, from_: S, fn: StepFn[T, S], *to: S) -> StepBuilder[T, S]:
        """Run ``fn`` for every run that reaches ``from_``; it returns one of ``to``."""
        if not callable(fn):
            raise BuildError(f"step function for {from_!r} is not callable")
        src = self._status(from_, "from")
        if src in self._steps:
            raise BuildError(
                f"a step from {self.status_type(src).name} is already defined; one step per status"
            )
        dests = self._edges(from_, to, "add_step")
        self._steps[src] = StepSpec(src, fn, dests)
        return StepBuilder(self._steps, src)

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
        return TimeoutBuilder(self._timeout_options, src)

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
            raise BuildError(f"a connector named {name!r} is already defined; names are unique")
        if not callable(fn):
            raise BuildError(f"connector function for {name!r} is not callable")
        self._connectors[name] = ConnectorSpec(name, constructor, fn)
        return ConnectorBuilder(self._connectors, name)

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
        tracer_provider: object | None = None,
        stall_threshold: Duration = 1.0,
    ) -> Workflow[T, S]:
        """Check the graph and return a ``Workflow`` (not yet running: call ``run()``).

        ``pause_retry`` resumes paused runs after that many seconds (``None`` disables).
        ``max_threads`` bounds the pool that runs plain ``def`` user functions.
        Prometheus metrics go to ``metrics_registry`` (default: the global registry).
        ``tracing=True`` adds OpenTelemetry spans (``pip install 'conveyor[otel]'``), from
        ``tracer_provider`` or the global one. While it runs, a blocked event loop (a
        blocking call in an ``async def``) is reported once it has not turned for
        ``stall_threshold`` seconds (0 disables the watchdog). Raises ``BuildError``.
        """
        definition = self.definition(
            has_timeout_store=timeout_store is not None,
            default_options=default_options,
            pause_retry=pause_retry,
            custom_delete=custom_delete,
            debug=debug,
            outbox=outbox,
            max_threads=max_threads,
            metrics_registry=metrics_registry,
            tracing=tracing,
            tracer_provider=tracer_provider,
            stall_threshold=stall_threshold,
        )
        return Workflow(
            definition,
            streamer=streamer,
            record_store=record_store,
            role_scheduler=role_scheduler,
            timeout_store=timeout_store,
            clock=clock,
            logger=logger,
        )

    def definition(
        self,
        *,
        has_timeout_store: bool = True,
        default_options: Options | None = None,
        pause_retry: Duration | None = 3600.0,
        custom_delete: DeleteFn[T] | None = None,
        debug: bool = False,
        outbox: OutboxOptions | None = None,
        max_threads: int = 16,
        metrics_registry: CollectorRegistry | None = None,
        tracing: bool = False,
        tracer_provider: object | None = None,
        stall_threshold: Duration = 1.0,
    ) -> Definition[T, S]:
        """The frozen definition ``build`` would use (tools read it without adapters)."""
        graph = self._graph.freeze()
        if not graph.nodes:
            raise BuildError(f"workflow {self.name!r} has no steps or callbacks")
        if not graph.starting():
            raise BuildError(
                f"workflow {self.name!r} needs at least one starting point: a step or "
                "callback from a status that no other step, callback or timeout leads to"
            )
        if self._timeouts and not has_timeout_store:
            raise BuildError(f"workflow {self.name!r} has timeouts: build it with a timeout_store")
        retry = seconds(pause_retry)
        if retry is not None and retry <= 0:
            raise BuildError("pause_retry must be positive seconds, or None to disable")
        if max_threads < 1:
            raise BuildError("max_threads must be at least 1")
        stall = seconds(stall_threshold)
        if stall is None or stall < 0:
            raise BuildError("stall_threshold must be seconds >= 0 (0 disables the watchdog)")
        return Definition(
            name=self.name,
            object_type=self.object_type,
            status_type=self.status_type,
            graph=graph,
            steps=MappingProxyType(dict(self._steps)),
            callbacks=MappingProxyType({k: tuple(v) for k, v in self._callbacks.items()}),
            hooks=MappingProxyType(dict(self._hooks)),
            timeouts=MappingProxyType({k: tuple(v) for k, v in self._timeouts.items()}),
            timeout_options=MappingProxyType(dict(self._timeout_options)),
            connectors=tuple(self._connectors.values()),
            default_options=default_options or Options(),
            pause_retry=retry,
            custom_delete=custom_delete,
            debug=debug,
            outbox=outbox or OutboxOptions(),
            max_threads=max_threads,
            metrics_registry=metrics_registry,
            tracing=tracing,
            tracer_provider=tracer_provider,
            stall_threshold=stall,
        )
