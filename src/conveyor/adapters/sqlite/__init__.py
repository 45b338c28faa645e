"""SQLite adapters: all four contracts on one file, shared by the processes of a machine.

Standard library only (``sqlite3``); ``pip install 'conveyor[sqlite]'`` adds nothing.
Open them together with ``conveyor.connect("sqlite:///orders.db")`` (``open_backend``),
or one by one with each class's ``open(path)``. ``migrate(url)`` creates the schema
(``schema.sql`` in this package) without opening anything else; ``migrate_report(url)``
does the same and tells what it did.
"""

from ._backend import migrate as migrate
from ._backend import migrate_report as migrate_report
from ._backend import open_backend as open_backend
from ._record_store import SQLiteRecordStore as SQLiteRecordStore
from ._record_store import SQLiteRecordStoreWithoutHistory as SQLiteRecordStoreWithoutHistory
from ._role_scheduler import SQLiteLease as SQLiteLease
from ._role_scheduler import SQLiteRoleScheduler as SQLiteRoleScheduler
from ._schema import SCHEMA_VERSION as SCHEMA_VERSION
from ._streamer import SQLiteEventReceiver as SQLiteEventReceiver
from ._streamer import SQLiteEventSender as SQLiteEventSender
from ._streamer import SQLiteEventStreamer as SQLiteEventStreamer
from ._streamer import SQLiteTail as SQLiteTail
from ._timeout_store import SQLiteTimeoutStore as SQLiteTimeoutStore

__all__ = (
    "SCHEMA_VERSION",
    "SQLiteEventReceiver",
    "SQLiteEventSender",
    "SQLiteEventStreamer",
    "SQLiteLease",
    "SQLiteRecordStore",
    "SQLiteRecordStoreWithoutHistory",
    "SQLiteRoleScheduler",
    "SQLiteTail",
    "SQLiteTimeoutStore",
    "migrate",
    "migrate_report",
    "open_backend",
)
