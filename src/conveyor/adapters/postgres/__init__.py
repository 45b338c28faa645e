"""PostgreSQL adapters: records with their outbox, timeouts, an event log and role leases.

Install with ``pip install 'conveyor[postgres]'`` (the asyncpg driver). Open all four on
one database with ``conveyor.connect("postgresql://user@host/db")``: there the record
store appends each write's event to the event log in the write's own statement (records
and events share the database, so the transactional outbox and its relay have nothing
to bridge); a ``PostgresRecordStore`` built without ``events=`` keeps the outbox for any
other event streamer; create the schema
first with ``conveyor migrate --store postgresql://...`` (or pass ``migrate=True``, or
``?migrate=true`` in the URL). A schema migrated by a newer conveyor is refused (upgrade
conveyor) rather than run by code that does not know it. Options (``PostgresOptions``:
schema, table prefix, pool size, role timings, retention) are keyword arguments or URL
query parameters, each checked for type and range (``AdapterError``: ``option
role_ttl='abc' is not a number``); the table prefix is at most 46 bytes, so every table
and index name fits PostgreSQL's 63-byte identifiers.

Retention (``Pruner``, every ``prune_interval``, 60 s): an event is deleted once every
cursor of its topic has passed it and it is ``event_retention`` old (10 minutes); events
of a topic with no cursor at all, which nobody consumes (a workflow's run-state-change
topic when no hook or pause retry reads it: one event per finished run), go after
``unread_event_retention``, by default the same 10 minutes, as on SQLite. A consumer
added later starts from what is left. Dead cursors go after ``cursor_retention`` (7 days),
completed timeouts after ``timeout_retention`` (1 day).
How each adapter works, and what it guarantees, is in its module's docstring:
``PostgresRecordStore`` (compare-and-set batches), ``PostgresEventStreamer`` (gap-free
reads, LISTEN/NOTIFY), ``PostgresRoleScheduler`` (leases, takeover time, spreading),
``PostgresTimeoutStore``, ``PostgresDatabase`` (pooling, reconnects, notifications);
``Pruner`` says what is deleted when.

Driver choice, measured on the 2-core machine this was written on (PostgreSQL 15 on the
same cores, fsync and synchronous_commit on; ``benchmarks/pg_drivers.py``), writes per
second for one compare-and-set update plus its outbox insert:

==========================================  =========  =========
case                                          asyncpg   psycopg 3
==========================================  =========  =========
BEGIN; UPDATE; INSERT; COMMIT, 1 task           1,106      1,203
the same, 8 tasks on a pool of 8                3,570      3,877
one statement (CTE), 1 task                     2,206      1,394
one statement (CTE), 8 tasks                    5,943      3,745
64 writes per statement (unnest), 1 task       31,133     21,387
64 writes per statement, 8 tasks               49,764     39,854
lookup of one record by run ID, 8 tasks        13,894      5,800
==========================================  =========  =========

psycopg's pipeline mode did not help here (1,282 / 2,615). asyncpg is faster where the
adapters spend their time (single statements, batches, lookups) and uses about half the
client CPU per statement (113 vs 222 µs for the CTE write), which matters when the
database shares the cores. asyncpg's own pool is not used either: its reset on release
and its proxies cost about 40 µs of client CPU per statement (``_pool``).
"""

try:
    import asyncpg as _asyncpg  # noqa: F401
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the PostgreSQL adapters need the asyncpg driver: pip install 'conveyor[postgres]'"
    ) from _exc

from ..._kit._spread import assign_roles as assign_roles
from ._backend import PostgresBackend as PostgresBackend
from ._backend import open_backend as open_backend
from ._database import Database as PostgresDatabase
from ._options import PostgresOptions as PostgresOptions
from ._pruner import Pruner as Pruner
from ._record_store import PostgresRecordStore as PostgresRecordStore
from ._record_store import (
    PostgresRecordStoreWithoutHistory as PostgresRecordStoreWithoutHistory,
)
from ._role_scheduler import PostgresLease as PostgresLease
from ._role_scheduler import PostgresRoleScheduler as PostgresRoleScheduler
from ._schema import LATEST_VERSION as LATEST_VERSION
from ._schema import migrate as migrate
from ._schema import migrate_report as migrate_report
from ._streamer import PostgresEventReceiver as PostgresEventReceiver
from ._streamer import PostgresEventSender as PostgresEventSender
from ._streamer import PostgresEventStreamer as PostgresEventStreamer
from ._tail import PostgresTail as PostgresTail
from ._timeout_store import PostgresTimeoutStore as PostgresTimeoutStore

__all__ = (
    "LATEST_VERSION",
    "PostgresBackend",
    "PostgresDatabase",
    "PostgresEventReceiver",
    "PostgresEventSender",
    "PostgresEventStreamer",
    "PostgresLease",
    "PostgresOptions",
    "PostgresRecordStore",
    "PostgresRecordStoreWithoutHistory",
    "PostgresRoleScheduler",
    "PostgresTail",
    "PostgresTimeoutStore",
    "Pruner",
    "assign_roles",
    "migrate",
    "migrate_report",
    "open_backend",
)
