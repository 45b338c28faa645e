"""``conveyor.connect("postgresql://...")``: the four PostgreSQL adapters on one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ..._connect import Backend
from ._database import Database
from ._options import split_url
from ._pruner import Pruner
from ._record_store import PostgresRecordStore, PostgresRecordStoreWithoutHistory
from ._role_scheduler import PostgresRoleScheduler
from ._schema import check_schema, migrate
from ._streamer import PostgresEventStreamer
from ._timeout_store import PostgresTimeoutStore

__all__ = ["PostgresBackend", "open_backend"]


@dataclass(frozen=True, slots=True, repr=False)
class PostgresBackend(Backend):
    """A ``Backend`` whose adapters share one ``Database`` (pool and LISTEN connection);
    its ``repr`` masks the URL's password, as ``Backend``'s does."""

    database: Database
    pruner: Pruner


@asynccontextmanager
async def open_backend(url: str, **options: Any) -> AsyncIterator[PostgresBackend]:
    """Open the streamer, record store, role scheduler and timeout store on ``url``.

    ``options`` are ``PostgresOptions`` fields (also accepted as URL query parameters):
    ``migrate=True`` applies pending migrations first, else a missing or older schema
    raises ``AdapterError`` naming ``conveyor migrate``; ``history=False`` builds the
    record store without history (``PostgresRecordStoreWithoutHistory``, for measuring
    what history costs). Pruning runs in the background
    every ``prune_interval`` seconds. Closing releases the roles and closes every
    connection. Raises ``AdapterError`` (``AdapterUnavailable`` if the server does not
    answer).
    """
    dsn, settings = split_url(url, options)
    if settings.migrate:  # before anything else connects (the listener needs the tables)
        await migrate(url, **options)
    db = await Database.open(dsn, settings)
    pruning: asyncio.Task[None] | None = None
    roles: PostgresRoleScheduler | None = None
    streamer: PostgresEventStreamer | None = None
    store: PostgresRecordStore | PostgresRecordStoreWithoutHistory | None = None
    try:
        if not settings.migrate:
            await check_schema(db, settings)
        streamer = PostgresEventStreamer(db)
        store_type = PostgresRecordStore if settings.history else PostgresRecordStoreWithoutHistory
        store = store_type(db, events=streamer if settings.publish_events else None)
        roles = PostgresRoleScheduler(db)
        pruner = Pruner(db)
        pruning = asyncio.get_running_loop().create_task(
            pruner.run(), name="conveyor-postgres-pruner"
        )
        yield PostgresBackend(
            url,
            streamer,
            store,
            roles,
            PostgresTimeoutStore(db),
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
