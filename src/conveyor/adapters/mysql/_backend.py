"""``conveyor.connect("mysql://...")``: the four MySQL adapters on one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..._connect import Backend
from ._database import Database
from ._pruner import Pruner
from ._record_store import MySQLRecordStore, MySQLRecordStoreWithoutHistory, record_store
from ._role_scheduler import MySQLRoleScheduler
from ._role_sql import prune_roles
from ._streamer import MySQLEventStreamer
from ._timeout_store import MySQLTimeoutStore, prune_timeouts

__all__ = ["MySQLBackend", "open_backend"]


@dataclass(frozen=True, slots=True, repr=False)
class MySQLBackend(Backend):
    """A ``Backend`` whose adapters share one ``Database`` (pool); its ``repr`` masks the
    URL's password, as ``Backend``'s does."""

    database: Database
    pruner: Pruner


@asynccontextmanager
async def open_backend(url: str, **options: Any) -> AsyncIterator[MySQLBackend]:
    """Open the streamer, record store, role scheduler and timeout store on ``url``
    (``mysql://user:password@host:3306/database`` or ``mariadb://...``).

    ``options`` are ``MySQLOptions`` fields (also URL query parameters): ``migrate=True``
    applies pending migrations first, else a missing or older schema raises
    ``AdapterError`` naming ``conveyor migrate``; ``history=False`` builds the record
    store without history. The record store publishes to the streamer: each write appends
    its event to the event log in its own transaction, so workflows on these adapters run
    no outbox relay. Pruning (consumed events, dead cursors, finished timeouts, departed
    members) runs every ``prune_interval`` seconds in one process at a time. Closing
    releases the roles and closes every connection. Raises ``AdapterError``
    (``AdapterUnavailable`` if the server does not answer).
    """
    db = await Database.open(url, **options)
    pruning: asyncio.Task[None] | None = None
    roles: MySQLRoleScheduler | None = None
    streamer: MySQLEventStreamer | None = None
    store: MySQLRecordStore | MySQLRecordStoreWithoutHistory | None = None
    try:
        streamer = MySQLEventStreamer(db)
        store = record_store(db, events=streamer if db.options.publish_events else None)
        roles = MySQLRoleScheduler(db)
        pruner = Pruner(db, extra={"timeouts": prune_timeouts, "roles": prune_roles})
        pruning = asyncio.get_running_loop().create_task(pruner.run(), name="conveyor-mysql-pruner")
        yield MySQLBackend(
            url,
            streamer,
            store,
            roles,
            MySQLTimeoutStore(db),
            database=db,
            pruner=pruner,
        )
    finally:
        if pruning is not None:
            pruning.cancel()
            await asyncio.wait({pruning})
        if roles is not None:
            await roles.close()
        if streamer is not None:
            await streamer.close()
        if store is not None:
            await store.close()
        await db.close()
