"""The definition of a built workflow: one frozen model, copied at ``Builder.build()``.

Everything the engine, the planner and the tools read about a workflow lives here: its
statuses and graph, the specs of its steps, callbacks, timeouts, connectors and hooks, and
the options it was built with. Nothing in it changes after ``build()``, so a builder that
is changed later cannot reach a workflow it already built.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._connector import ConnectorConstructor, ConnectorEvent
from ._graph import Graph
from ._options import Options, OutboxOptions
from ._runstate import RunState
from ._types import CallbackFn, DeleteFn, HookFn, StepFn, TimeoutFn, TimerFn

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "CallbackSpec",
    "ConnectorFn",
    "ConnectorSpec",
    "Definition",
    "StepSpec",
    "TimeoutSpec",
]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

# Any: a connector function receives the Workflow, which is built from this definition
# (one layer up); naming it here would make the definition import the workflow.
ConnectorFn = Callable[[Any, ConnectorEvent], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class StepSpec(Generic[T, S]):
    """``add_step``: the function that moves runs on from ``status``."""

    status: int
    fn: StepFn[T, S]
    destinations: tuple[int, ...]
    options: Options = field(default_factory=Options)


@dataclass(frozen=True, slots=True)
class CallbackSpec(Generic[T, S]):
    """``add_callback``: a function an outside caller runs on a run at ``status``."""

    status: int
    fn: CallbackFn[T, S]
    destinations: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TimeoutSpec(Generic[T, S]):
    """``add_timeout``: the ``index``-th timeout of ``status``."""

    status: int
    index: int
    timer: TimerFn[T, S]
    fn: TimeoutFn[T, S]
    destinations: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """``add_connector``: an outside stream whose events ``fn`` handles."""

    name: str
    constructor: ConnectorConstructor
    fn: ConnectorFn
    options: Options = field(default_factory=Options)


@dataclass(frozen=True, slots=True)
class Definition(Generic[T, S]):
    """Everything ``Builder.build`` decided, frozen (its mappings are read-only views)."""

    name: str
    object_type: type[T]
    status_type: type[S]
    graph: Graph
    steps: Mapping[int, StepSpec[T, S]]
    callbacks: Mapping[int, tuple[CallbackSpec[T, S], ...]]
    hooks: Mapping[RunState, HookFn[T, S]]
    timeouts: Mapping[int, tuple[TimeoutSpec[T, S], ...]]
    timeout_options: Mapping[int, Options]
    connectors: tuple[ConnectorSpec, ...]
    default_options: Options
    pause_retry: float | None
    custom_delete: DeleteFn[T] | None
    debug: bool
    outbox: OutboxOptions
    max_threads: int
    metrics_registry: CollectorRegistry | None = None
    tracing: bool = False
    tracer_provider: object | None = None
    stall_threshold: float = 1.0
    """Seconds without an event-loop turn after which the watchdog reports (0: off)."""
    _names: Mapping[int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = MappingProxyType({int(m): m.name for m in self.status_type})
        object.__setattr__(self, "_names", names)

    def status_name(self, status: int) -> str:
        """The enum member's name for ``status`` (its number if it is not a member)."""
        name = self._names.get(status)
        return name if name is not None else str(status)
