"""conveyor: durable, event-driven business workflows on your own services and databases.

Declare a workflow with ``Builder``, build it on adapters (``conveyor.connect(url)``, or
``conveyor.adapters.memory`` and the others), ``run()`` it, and ``trigger`` runs. See the
README for a tour. This module holds what workflow authors use; adapter authors find the
contracts, wire types and capabilities in ``conveyor.abc``, and the conformance suites in
``conveyor.adaptertest``.
"""

from ._builder import Builder as Builder
from ._builder import ConnectorBuilder as ConnectorBuilder
from ._builder import StepBuilder as StepBuilder
from ._builder import TimeoutBuilder as TimeoutBuilder
from ._client import WorkflowClient as WorkflowClient
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._connect import Backend as Backend
from ._connect import MixedBackend as MixedBackend
from ._connect import connect as connect
from ._connect import migrate as migrate
from ._connector import ConnectorEvent as ConnectorEvent
from ._control import RunStateController as RunStateController
from ._definition import Definition as Definition
from ._errors import AdapterError as AdapterError
from ._errors import AdapterUnavailable as AdapterUnavailable
from ._errors import BuildError as BuildError
from ._errors import CallbackRejected as CallbackRejected
from ._errors import CallbackRejection as CallbackRejection
from ._errors import DecodeError as DecodeError
from ._errors import InvalidForeignID as InvalidForeignID
from ._errors import InvalidObject as InvalidObject
from ._errors import InvalidSchedule as InvalidSchedule
from ._errors import InvalidTransition as InvalidTransition
from ._errors import NotRunning as NotRunning
from ._errors import OutboxRecordNotFound as OutboxRecordNotFound
from ._errors import RecordNotFound as RecordNotFound
from ._errors import RunEnded as RunEnded
from ._errors import TimeoutNotFound as TimeoutNotFound
from ._errors import VersionConflict as VersionConflict
from ._errors import WorkflowError as WorkflowError
from ._errors import WorkflowInProgress as WorkflowInProgress
from ._markers import Cancel as Cancel
from ._markers import Marker as Marker
from ._markers import Pause as Pause
from ._markers import SaveAndRepeat as SaveAndRepeat
from ._markers import Skip as Skip
from ._options import Options as Options
from ._options import OutboxOptions as OutboxOptions
from ._protocols import Logger as Logger
from ._record import Meta as Meta
from ._record import Record as Record
from ._record import Run as Run
from ._record import TypedRecord as TypedRecord
from ._runstate import RunState as RunState
from ._runstate import State as State
from ._timers import duration_timer as duration_timer
from ._timers import time_timer as time_timer
from ._types import CallbackFn as CallbackFn
from ._types import DeleteFn as DeleteFn
from ._types import HookFn as HookFn
from ._types import StepFn as StepFn
from ._types import StepResult as StepResult
from ._types import TimeoutFn as TimeoutFn
from ._types import TimerFn as TimerFn
from ._workflow import Workflow as Workflow

__all__ = (
    "AdapterError",
    "AdapterUnavailable",
    "Backend",
    "BuildError",
    "Builder",
    "CallbackFn",
    "CallbackRejected",
    "CallbackRejection",
    "Cancel",
    "Clock",
    "ConnectorBuilder",
    "ConnectorEvent",
    "DecodeError",
    "Definition",
    "DeleteFn",
    "HookFn",
    "InvalidForeignID",
    "InvalidObject",
    "InvalidSchedule",
    "InvalidTransition",
    "Logger",
    "Marker",
    "Meta",
    "MixedBackend",
    "NotRunning",
    "Options",
    "OutboxOptions",
    "OutboxRecordNotFound",
    "Pause",
    "Record",
    "RecordNotFound",
    "Run",
    "RunEnded",
    "RunState",
    "RunStateController",
    "SaveAndRepeat",
    "Skip",
    "State",
    "StepBuilder",
    "StepFn",
    "StepResult",
    "SystemClock",
    "TimeoutBuilder",
    "TimeoutFn",
    "TimeoutNotFound",
    "TimerFn",
    "TypedRecord",
    "VersionConflict",
    "Workflow",
    "WorkflowClient",
    "WorkflowError",
    "WorkflowInProgress",
    "connect",
    "duration_timer",
    "migrate",
    "time_timer",
)
