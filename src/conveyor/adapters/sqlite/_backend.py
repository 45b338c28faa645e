"""``conveyor.connect("sqlite:///file.db")``: the four SQLite adapters on one file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..._clock import Clock
from ..._connect import Backend
from ..._errors import AdapterError
from ..._migration import MigrationReport
from ..._urls import redact
from .._values import boolean, number, parse, show
from ._db import Database
from ._record_store import SQLiteRecordStore, SQLiteRecordStoreWithoutHistory
from ._role_scheduler import SQLiteRoleScheduler
from ._schema import path_from_url
from ._streamer import SQLiteEventStreamer
from ._timeout_store import SQLiteTimeoutStore

__all__ = ["migrate", "migrate_report", "open_backend"]

# option -> (lower bound, whether the bound itself is allowed)
_NUMBERS: dict[str, tuple[float, bool]] = {
    "busy_timeout": (0.0, True),
    "lock_timeout": (0.0, True),
    "max_poll": (0.0, False),
    "lease_ttl": (0.0, False),
    "lease_poll": (0.0, False),
    "grace": (0.0, True),
    "retention": (0.0, True),
    "prune_interval": (0.0, True),
}
_BOOLEANS = ("create_schema", "inline", "history")
_DEFAULT_LEASE_TTL = 5.0
_DEFAULT_LEASE_POLL = 0.2


def _options(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Keyword options, with ``?name=value`` pairs from the URL as defaults, checked
    (``AdapterError`` for a value of the wrong type or out of range)."""
    merged: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        try:
            query = urlsplit(url).query
        except ValueError:
            raise AdapterError(f"not a valid SQLite URL: {redact(url)}") from None
        for name, raw in parse_qsl(query, keep_blank_values=True):
            if name in _NUMBERS:
                merged[name] = parse(name, raw, "number")
            elif name in _BOOLEANS:
                merged[name] = parse(name, raw, "boolean")
            else:
                raise AdapterError(f"unknown sqlite:// option {name!r} in {redact(url)}")
    merged.update(options)
    unknown = set(merged) - {*_NUMBERS, *_BOOLEANS, "clock"}
    if unknown:
        raise TypeError(f"unknown sqlite:// options: {', '.join(sorted(unknown))}")
    for name, (bound, inclusive) in _NUMBERS.items():
        if name in merged and not (name == "grace" and merged[name] is None):
            merged[name] = (
                number(name, merged[name], at_least=bound)
                if inclusive
                else number(name, merged[name], above=bound)
            )
    for name in _BOOLEANS:
        if name in merged:
            boolean(name, merged[name])
    ttl = merged.get("lease_ttl", _DEFAULT_LEASE_TTL)
    poll = merged.get("lease_poll", _DEFAULT_LEASE_POLL)
    if poll >= ttl / 3:
        raise AdapterError(
            f"option lease_poll={show(poll)} must be less than lease_ttl / 3 "
            f"(lease_ttl={show(ttl)})"
        )
    return merged


def _path(url: str) -> str:
    return path_from_url(url.split("?", 1)[0]) if url.startswith("sqlite:") else url


@asynccontextmanager
async def open_backend(url: str, **options: Any) -> AsyncIterator[Backend]:
    """Open the streamer, record store, role scheduler and timeout store on one file.

    Options (keywords, or ``?name=value`` in the URL): ``create_schema`` (default
    true: create the schema if missing; false: require it, as made by ``migrate``),
    ``clock`` (event timestamps), ``busy_timeout`` and ``lock_timeout`` (seconds to
    wait for another process's write lock per attempt, and in all), ``max_poll`` (the
    longest pause between looks for other processes' writes while idle), ``lease_ttl``,
    ``lease_poll`` and ``grace`` (the role scheduler's), ``retention`` and
    ``prune_interval`` (how long consumed events are kept, and how often pruned),
    ``inline`` (default true: short transactions that need not wait run on the event
    loop's thread; false: every statement goes through the connection's thread),
    ``history`` (default true: every write adds a history row, ``KeepsHistory``; false:
    the record store is ``SQLiteRecordStoreWithoutHistory``, whose writes add none).

    The record store, timeout store and streamer share one ``Database`` (a connection
    on its own thread, and the inline one); the role scheduler has its own connection
    and thread, so lease renewals never queue behind work.
    """
    opts = _options(url, options)
    path = _path(url)
    clock: Clock | None = opts.get("clock")
    db_options: dict[str, Any] = {
        k: opts[k] for k in ("busy_timeout", "lock_timeout", "max_poll", "inline") if k in opts
    }
    db = Database(path, **db_options)
    await db.open(create_schema=opts.get("create_schema", True))
    streamer: SQLiteEventStreamer | None = None
    scheduler: SQLiteRoleScheduler | None = None
    try:
        streamer = SQLiteEventStreamer(
            db,
            clock=clock,
            retention=opts.get("retention", 60.0),
            prune_interval=opts.get("prune_interval", 5.0),
        )
        scheduler = await SQLiteRoleScheduler.open(
            path,
            lease_ttl=opts.get("lease_ttl", _DEFAULT_LEASE_TTL),
            poll_interval=opts.get("lease_poll", _DEFAULT_LEASE_POLL),
            grace=opts.get("grace"),
            create_schema=False,
        )
        store_type = (
            SQLiteRecordStore if opts.get("history", True) else SQLiteRecordStoreWithoutHistory
        )
        yield Backend(
            url,
            streamer,
            store_type(db),
            scheduler,
            SQLiteTimeoutStore(db),
        )
    finally:
        try:
            if scheduler is not None:
                await scheduler.close()
            if streamer is not None:
                await streamer.close()
        finally:
            await db.close()


async def migrate(url_or_path: str, **options: Any) -> int:
    """Create or upgrade the schema of a SQLite file; idempotent.

    Accepts ``sqlite:///file.db`` URLs or plain paths; creates the file if missing.
    Returns the schema version the file is at (``migrate_report`` tells what it did).
    """
    return (await migrate_report(url_or_path, **options)).to_version


async def migrate_report(url_or_path: str, **options: Any) -> MigrationReport:
    """``migrate``, returning what it did (``conveyor migrate --store URL`` prints it)."""
    opts = _options(url_or_path, options)
    db_options = {k: opts[k] for k in ("busy_timeout", "lock_timeout") if k in opts}
    db = Database(_path(url_or_path), watch=False, inline=False, **db_options)
    await db.open(create_schema=True)
    await db.close()
    report = db.migration
    assert report is not None, "open(create_schema=True) applies the schema"
    return report
