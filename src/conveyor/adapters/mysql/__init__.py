"""MySQL and MariaDB adapters (``pip install 'conveyor[mysql]'``, the asyncmy driver)."""

from ._backend import MySQLBackend as MySQLBackend
from ._backend import open_backend as open_backend
from ._database import Database as MySQLDatabase
from ._options import MySQLOptions as MySQLOptions
from ._pruner import Pruner as Pruner
from ._record_store import MySQLRecordStore as MySQLRecordStore
from ._record_store import MySQLRecordStoreWithoutHistory as MySQLRecordStoreWithoutHistory
from ._role_scheduler import MySQLLease as MySQLLease
from ._role_scheduler import MySQLRoleScheduler as MySQLRoleScheduler
from ._role_sql import prune_roles as prune_roles
from ._schema import migrate as migrate
from ._schema import migrate_report as migrate_report
from ._streamer import MySQLEventReceiver as MySQLEventReceiver
from ._streamer import MySQLEventSender as MySQLEventSender
from ._streamer import MySQLEventStreamer as MySQLEventStreamer
from ._tail import MySQLTail as MySQLTail
from ._timeout_store import MySQLTimeoutStore as MySQLTimeoutStore
from ._timeout_store import prune_timeouts as prune_timeouts

__all__ = (
    "MySQLBackend",
    "MySQLDatabase",
    "MySQLEventReceiver",
    "MySQLEventSender",
    "MySQLEventStreamer",
    "MySQLLease",
    "MySQLOptions",
    "MySQLRecordStore",
    "MySQLRecordStoreWithoutHistory",
    "MySQLRoleScheduler",
    "MySQLTail",
    "MySQLTimeoutStore",
    "Pruner",
    "migrate",
    "migrate_report",
    "open_backend",
    "prune_roles",
    "prune_timeouts",
)
