"""conveyor: durable, event-driven business workflows on your own services and databases.

Declare a workflow with ``Builder``, build it on adapters (``conveyor.adapters.memory``
and others), ``run()`` it, and ``trigger`` runs. See the README for a tour.
"""

from ._builder import Builder as Builder
from ._builder import ConnectorBuilder as ConnectorBuilder
from ._builder import StepBuilder as StepBuilder
from ._builder import TimeoutBuilder as TimeoutBuilder
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._codec import Codec as Codec
from ._codec import DecodeError as DecodeError
from ._connect import Backend as Backend
from ._connect import connect as connect
from ._connect import migrate as migrate
from ._connect import register_backend as register_backend
from ._connector import ConnectorConstructor as ConnectorConstructor
from ._connector import ConnectorConsumer as ConnectorConsumer
from ._connector import ConnectorEvent as ConnectorEvent
from ._controller import RunStateController as RunStateController
from ._errors import AdapterError as AdapterError
from ._errors import AdapterUnavailable as AdapterUnavailable
from ._errors import BuildError as BuildError
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
from ._event import Event as Event
from ._event import Header as Header
from ._event import OutboxEvent as OutboxEvent
from ._event import delete_topic as delete_topic
from ._event import make_role as make_role
from ._event import run_state_change_topic as run_state_change_topic
from ._event import topic as topic
from ._options import Options as Options
from ._options import OutboxOptions as OutboxOptions
from ._protocols import EventReceiver as EventReceiver
from ._protocols import EventSender as EventSender
from ._protocols import EventStreamer as EventStreamer
from ._protocols import Lease as Lease
from ._protocols import Logger as Logger
from ._protocols import Order as Order
from ._protocols import OutgoingEvent as OutgoingEvent
from ._protocols import RecordFilter as RecordFilter
from ._protocols import RecordStore as RecordStore
from ._protocols import RecordWrite as RecordWrite
from ._protocols import RoleScheduler as RoleScheduler
from ._protocols import TimeoutRecord as TimeoutRecord
from ._protocols import TimeoutStore as TimeoutStore
from ._record import Marker as Marker
from ._record import Meta as Meta
from ._record import Record as Record
from ._record import Run as Run
from ._record import TypedRecord as TypedRecord
from ._runstate import RunState as RunState
from ._runstate import State as State
from ._timers import duration_timer as duration_timer
from ._timers import time_timer as time_timer
from ._workflow import Workflow as Workflow

__all__ = (
    "AdapterError",
    "AdapterUnavailable",
    "Backend",
    "BuildError",
    "Builder",
    "Clock",
    "Codec",
    "ConnectorBuilder",
    "ConnectorConstructor",
    "ConnectorConsumer",
    "ConnectorEvent",
    "DecodeError",
    "Event",
    "EventReceiver",
    "EventSender",
    "EventStreamer",
    "Header",
    "InvalidSchedule",
    "InvalidTransition",
    "Lease",
    "Logger",
    "Marker",
    "Meta",
    "NotRunning",
    "Options",
    "Order",
    "OutboxEvent",
    "OutboxOptions",
    "OutboxRecordNotFound",
    "OutgoingEvent",
    "Record",
    "RecordFilter",
    "RecordNotFound",
    "RecordStore",
    "RecordWrite",
    "RoleScheduler",
    "Run",
    "RunEnded",
    "RunState",
    "RunStateController",
    "State",
    "StepBuilder",
    "SystemClock",
    "TimeoutBuilder",
    "TimeoutNotFound",
    "TimeoutRecord",
    "TimeoutStore",
    "TypedRecord",
    "VersionConflict",
    "Workflow",
    "WorkflowError",
    "WorkflowInProgress",
    "connect",
    "delete_topic",
    "duration_timer",
    "make_role",
    "migrate",
    "register_backend",
    "run_state_change_topic",
    "time_timer",
    "topic",
)
