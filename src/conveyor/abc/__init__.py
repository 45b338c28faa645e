"""For adapter authors: the contracts, the wire types, the naming helpers and the capabilities.

A backend implements the four core contracts (``RecordStore``, ``EventStreamer`` with its
``EventSender`` and ``EventReceiver``, ``RoleScheduler``, ``TimeoutStore``), optionally a
``ConnectorConstructor``, and any capability it can honour (``ReportsPending`` and the
others; see ``conveyor._capabilities``' docstring, repeated on each Protocol). Each
contract's semantics, what is atomic and what is raised, are written on its Protocol. The
conformance suites in ``conveyor.adaptertest`` check them against a real backend;
``conveyor.abc.kit`` holds the plumbing the built-in adapters share.

Workflow authors need none of this: they use ``conveyor``.
"""

from .._capabilities import DefinitionRecord as DefinitionRecord
from .._capabilities import Failure as Failure
from .._capabilities import HistoryEntry as HistoryEntry
from .._capabilities import KeepsDefinitions as KeepsDefinitions
from .._capabilities import KeepsHistory as KeepsHistory
from .._capabilities import KeepsSnapshots as KeepsSnapshots
from .._capabilities import ListsRuns as ListsRuns
from .._capabilities import NotifiesChanges as NotifiesChanges
from .._capabilities import PinsEventLocation as PinsEventLocation
from .._capabilities import PublishesEvents as PublishesEvents
from .._capabilities import ReadsPartitions as ReadsPartitions
from .._capabilities import RecordsFailures as RecordsFailures
from .._capabilities import ReportsOutbox as ReportsOutbox
from .._capabilities import ReportsPending as ReportsPending
from .._capabilities import RunPage as RunPage
from .._capabilities import RunQuery as RunQuery
from .._capabilities import Tail as Tail
from .._capabilities import TailBatch as TailBatch
from .._capabilities import TailsTopics as TailsTopics
from .._clock import Clock as Clock
from .._connect import Parts as Parts
from .._connect import register_backend as register_backend
from .._connect import register_parts as register_parts
from .._connector import ConnectorConstructor as ConnectorConstructor
from .._connector import ConnectorConsumer as ConnectorConsumer
from .._connector import ConnectorEvent as ConnectorEvent
from .._errors import AdapterError as AdapterError
from .._errors import AdapterUnavailable as AdapterUnavailable
from .._errors import RecordNotFound as RecordNotFound
from .._errors import TimeoutNotFound as TimeoutNotFound
from .._errors import VersionConflict as VersionConflict
from .._errors import WorkflowError as WorkflowError
from .._errors import WorkflowInProgress as WorkflowInProgress
from .._event import Event as Event
from .._event import Header as Header
from .._event import OutboxEvent as OutboxEvent
from .._event import delete_topic as delete_topic
from .._event import make_role as make_role
from .._event import run_state_change_topic as run_state_change_topic
from .._event import topic as topic
from .._event import topic_for as topic_for
from .._migration import AppliedMigration as AppliedMigration
from .._migration import MigrationReport as MigrationReport
from .._protocols import Delivery as Delivery
from .._protocols import EventReceiver as EventReceiver
from .._protocols import EventSender as EventSender
from .._protocols import EventStreamer as EventStreamer
from .._protocols import Lease as Lease
from .._protocols import Order as Order
from .._protocols import OutgoingEvent as OutgoingEvent
from .._protocols import RecordFilter as RecordFilter
from .._protocols import RecordStore as RecordStore
from .._protocols import RecordWrite as RecordWrite
from .._protocols import RoleScheduler as RoleScheduler
from .._protocols import TimeoutRecord as TimeoutRecord
from .._protocols import TimeoutStore as TimeoutStore
from .._record import Meta as Meta
from .._record import Record as Record
from .._runstate import RunState as RunState

__all__ = (
    "AdapterError",
    "AdapterUnavailable",
    "AppliedMigration",
    "Clock",
    "ConnectorConstructor",
    "ConnectorConsumer",
    "ConnectorEvent",
    "DefinitionRecord",
    "Delivery",
    "Event",
    "EventReceiver",
    "EventSender",
    "EventStreamer",
    "Failure",
    "Header",
    "HistoryEntry",
    "KeepsDefinitions",
    "KeepsHistory",
    "KeepsSnapshots",
    "Lease",
    "ListsRuns",
    "Meta",
    "MigrationReport",
    "NotifiesChanges",
    "Order",
    "OutboxEvent",
    "OutgoingEvent",
    "Parts",
    "PinsEventLocation",
    "PublishesEvents",
    "ReadsPartitions",
    "Record",
    "RecordFilter",
    "RecordNotFound",
    "RecordStore",
    "RecordWrite",
    "RecordsFailures",
    "ReportsOutbox",
    "ReportsPending",
    "RoleScheduler",
    "RunPage",
    "RunQuery",
    "RunState",
    "Tail",
    "TailBatch",
    "TailsTopics",
    "TimeoutNotFound",
    "TimeoutRecord",
    "TimeoutStore",
    "VersionConflict",
    "WorkflowError",
    "WorkflowInProgress",
    "delete_topic",
    "make_role",
    "register_backend",
    "register_parts",
    "run_state_change_topic",
    "topic",
    "topic_for",
)
