"""In-memory adapters: the reference implementations, for tests and single-process use."""

from ._backend import open_backend as open_backend
from ._connector import MemoryConnector as MemoryConnector
from ._connector import MemoryConnectorConsumer as MemoryConnectorConsumer
from ._record_store import MemoryRecordStore as MemoryRecordStore
from ._role_scheduler import MemoryLease as MemoryLease
from ._role_scheduler import MemoryRoleScheduler as MemoryRoleScheduler
from ._streamer import MemoryEventReceiver as MemoryEventReceiver
from ._streamer import MemoryEventSender as MemoryEventSender
from ._streamer import MemoryEventStreamer as MemoryEventStreamer
from ._streamer import MemoryTail as MemoryTail
from ._timeout_store import MemoryTimeoutStore as MemoryTimeoutStore

__all__ = (
    "MemoryConnector",
    "MemoryConnectorConsumer",
    "MemoryEventReceiver",
    "MemoryEventSender",
    "MemoryEventStreamer",
    "MemoryLease",
    "MemoryRecordStore",
    "MemoryRoleScheduler",
    "MemoryTail",
    "MemoryTimeoutStore",
    "open_backend",
)
