"""One URL configures all four adapters: ``conveyor.connect("sqlite:///orders.db")``."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, fields
from typing import Any, cast
from urllib.parse import urlsplit

from ._errors import AdapterError
from ._migration import MigrationReport
from ._protocols import EventStreamer, RecordStore, RoleScheduler, TimeoutStore
from ._urls import redact

__all__ = ["Backend", "connect", "migrate", "register_backend"]


@dataclass(frozen=True, slots=True, repr=False)
class Backend:
    """The four adapters a workflow is built on, opened together from one URL.

    ``url`` is the URL as given (password included); ``repr`` shows it with the password
    masked. A subclass should be declared with ``@dataclass(repr=False)`` to keep this
    ``repr`` (a generated one leaves ``url`` out).
    """

    url: str = field(repr=False)
    streamer: EventStreamer
    record_store: RecordStore
    role_scheduler: RoleScheduler
    timeout_store: TimeoutStore

    def __repr__(self) -> str:
        shown = [f"url={redact(self.url)!r}"]
        shown += [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "url"]
        return f"{type(self).__name__}({', '.join(shown)})"


Opener = Callable[..., AbstractAsyncContextManager[Backend]]

Migrator = Callable[..., Awaitable[object]]
"""Creates or upgrades a backend's schema; returns a ``MigrationReport`` of what it did
(anything else, e.g. ``None``, reports nothing)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    opener: str
    """``"module:function"`` that opens a ``Backend`` as an async context manager."""
    migrator: str | None = None
    """``"module:function"`` that creates or upgrades the schema (returning a
    ``MigrationReport``); ``None``: nothing to do."""


# scheme -> entry; modules are imported only when used, so no driver is needed up front.
_OPENERS: dict[str, _Entry] = {
    "memory": _Entry("conveyor.adapters.memory:open_backend"),
    "sqlite": _Entry(
        "conveyor.adapters.sqlite:open_backend", "conveyor.adapters.sqlite:migrate_report"
    ),
    "postgresql": _Entry(
        "conveyor.adapters.postgres:open_backend", "conveyor.adapters.postgres:migrate_report"
    ),
    "postgres": _Entry(
        "conveyor.adapters.postgres:open_backend", "conveyor.adapters.postgres:migrate_report"
    ),
    "mysql": _Entry(
        "conveyor.adapters.mysql:open_backend", "conveyor.adapters.mysql:migrate_report"
    ),
    "mariadb": _Entry(
        "conveyor.adapters.mysql:open_backend", "conveyor.adapters.mysql:migrate_report"
    ),
}
_EXTRAS = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
}


def register_backend(scheme: str, opener: str, migrator: str | None = None) -> None:
    """Let ``connect`` open ``scheme://`` URLs with ``opener`` (``"module:function"``), and
    ``migrate`` run ``migrator`` (``"module:function"``; ``None``: no schema to create),
    which returns a ``MigrationReport`` of what it did (or anything else: nothing to
    report)."""
    _OPENERS[scheme] = _Entry(opener, migrator)


def _scheme(url: str) -> str:
    """``url``'s scheme; ``AdapterError`` (without the URL) if it does not parse."""
    try:
        return urlsplit(url).scheme
    except (ValueError, TypeError, AttributeError):
        raise AdapterError(f"not a valid backend URL: {redact(str(url))}") from None


def _load(url: str, which: str) -> object:
    """The function ``which`` (``"module:function"``) for ``url``'s scheme."""
    scheme = _scheme(url)
    module_name, _, attr = which.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(scheme)
        hint = f": pip install 'conveyor[{extra}]'" if extra else ""
        raise AdapterError(f"cannot open {scheme}:// backends{hint} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AdapterError(f"{module_name} has no {attr} (registered for {scheme}://)") from None


def _entry(url: str) -> _Entry:
    scheme = _scheme(url)
    if not scheme:
        raise AdapterError(
            "not a backend URL (expected e.g. memory://, sqlite:///path/to/file.db, "
            "postgresql://user@host/db)"
        )
    entry = _OPENERS.get(scheme)
    if entry is None:
        known = ", ".join(f"{s}://" for s in sorted(_OPENERS))
        raise AdapterError(f"unknown backend scheme {scheme!r} (known: {known})")
    return entry


def _opener(url: str) -> Opener:
    # The registry names functions by string: their type is the registration's promise.
    return cast(Opener, _load(url, _entry(url).opener))


@asynccontextmanager
async def connect(url: str, **options: Any) -> AsyncIterator[Backend]:
    """Open the streamer, record store, role scheduler and timeout store for ``url``.

    ``memory://`` (in-process), ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``,
    ``postgresql://user:password@host:5432/db``. ``options`` go to the backend. Closing
    the context closes the connections. Raises ``AdapterError`` for a bad URL.
    """
    async with _opener(url)(url, **options) as backend:
        yield backend


async def migrate(url: str, **options: Any) -> MigrationReport | None:
    """Create or upgrade the backend's schema (``conveyor migrate --store URL``).

    Idempotent. Returns what it did: whether it created the schema, the versions before
    and after, the versions applied and the tables created. Backends without a schema
    (``memory://``), and registered migrators that report nothing, return ``None``.
    """
    migrator = _entry(url).migrator
    if migrator is None:
        return None
    run = cast(Migrator, _load(url, migrator))
    report = await run(url, **options)
    return report if isinstance(report, MigrationReport) else None
