"""One URL configures all four adapters: ``conveyor.connect("sqlite:///orders.db")``; more
URLs move parts elsewhere: ``connect(url, events="nats://…", roles="redis://…")``."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from ._capabilities import PinsEventLocation
from ._errors import AdapterError
from ._migration import MigrationReport
from ._protocols import EventStreamer, RecordStore, RoleScheduler, TimeoutStore
from ._urls import redact

__all__ = [
    "Backend",
    "MixedBackend",
    "Parts",
    "connect",
    "event_location",
    "migrate",
    "register_backend",
    "register_parts",
]


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


@dataclass(frozen=True, slots=True, repr=False)
class MixedBackend(Backend):
    """A ``Backend`` whose parts come from several URLs (``connect(url, events=...)``);
    ``repr`` masks every password."""

    events_url: str = field(default="", repr=False)
    roles_url: str = field(default="", repr=False)
    timeouts_url: str = field(default="", repr=False)

    def __repr__(self) -> str:
        shown = [f"url={redact(self.url)!r}"]
        for name in ("events_url", "roles_url", "timeouts_url"):
            shown.append(f"{name}={redact(getattr(self, name))!r}")
        shown += [f"{f.name}={getattr(self, f.name)!r}" for f in fields(Backend) if f.name != "url"]
        return f"{type(self).__name__}({', '.join(shown)})"


@dataclass(frozen=True, slots=True, repr=False)
class Parts:
    """What the URL of a backend without a record store (a broker) gives a mixed
    deployment: any of a streamer, a role scheduler and a timeout store."""

    url: str = field(repr=False)
    streamer: EventStreamer | None = None
    role_scheduler: RoleScheduler | None = None
    timeout_store: TimeoutStore | None = None

    def __repr__(self) -> str:
        shown = [f"url={redact(self.url)!r}"]
        shown += [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "url"]
        return f"{type(self).__name__}({', '.join(shown)})"


Part = Literal["events", "roles", "timeouts"]
_ATTRIBUTE: dict[Part, str] = {
    "events": "streamer",
    "roles": "role_scheduler",
    "timeouts": "timeout_store",
}

Opener = Callable[..., AbstractAsyncContextManager[Backend]]
PartsOpener = Callable[..., AbstractAsyncContextManager[Parts | Backend]]

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
    parts_only: bool = False
    """The opener yields ``Parts`` (no record store): the URL can only name parts."""
    publishes: bool = False
    """The backend's record store appends its own events unless opened with
    ``publish_events=False`` (which ``connect`` passes when events go elsewhere)."""


# scheme -> entry; modules are imported only when used, so no driver is needed up front.
_OPENERS: dict[str, _Entry] = {
    "memory": _Entry("conveyor.adapters.memory:open_backend"),
    "sqlite": _Entry(
        "conveyor.adapters.sqlite:open_backend", "conveyor.adapters.sqlite:migrate_report"
    ),
    "postgresql": _Entry(
        "conveyor.adapters.postgres:open_backend",
        "conveyor.adapters.postgres:migrate_report",
        publishes=True,
    ),
    "postgres": _Entry(
        "conveyor.adapters.postgres:open_backend",
        "conveyor.adapters.postgres:migrate_report",
        publishes=True,
    ),
    "mysql": _Entry(
        "conveyor.adapters.mysql:open_backend",
        "conveyor.adapters.mysql:migrate_report",
        publishes=True,
    ),
    "mariadb": _Entry(
        "conveyor.adapters.mysql:open_backend",
        "conveyor.adapters.mysql:migrate_report",
        publishes=True,
    ),
    "redis": _Entry("conveyor.adapters.redis:open_backend", publishes=True),
    "rediss": _Entry("conveyor.adapters.redis:open_backend", publishes=True),
    "nats": _Entry("conveyor.adapters.nats._parts:open_parts", parts_only=True),
    "tls": _Entry("conveyor.adapters.nats._parts:open_parts", parts_only=True),
    "rabbitmq-stream": _Entry("conveyor.adapters.rabbitmq._parts:open_parts", parts_only=True),
    "kafka": _Entry("conveyor.adapters.kafka._parts:open_parts", parts_only=True),
}
_EXTRAS = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "redis": "redis",
    "rediss": "redis",
    "nats": "nats",
    "tls": "nats",
    "rabbitmq-stream": "rabbitmq",
    "kafka": "kafka",
}


def register_backend(scheme: str, opener: str, migrator: str | None = None) -> None:
    """Let ``connect`` open ``scheme://`` URLs with ``opener`` (``"module:function"``), and
    ``migrate`` run ``migrator`` (``"module:function"``; ``None``: no schema to create),
    which returns a ``MigrationReport`` of what it did (or anything else: nothing to
    report)."""
    _OPENERS[scheme] = _Entry(opener, migrator)


def register_parts(scheme: str, opener: str) -> None:
    """Let ``connect`` take parts (``events=``, ``roles=``, ``timeouts=``) from
    ``scheme://`` URLs with ``opener`` (``"module:function"``), an async context manager
    yielding ``Parts``: a backend without a record store, such as a broker."""
    _OPENERS[scheme] = _Entry(opener, parts_only=True)


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


def event_location(url: str | None, store_url: str) -> str:
    """What ``PinsEventLocation`` records for events on ``url`` in a deployment whose
    records are on ``store_url``: ``"store"`` when the record store's backend keeps them,
    else the URL's scheme, host, port and path (never its user, password or options)."""
    if url is None or url == store_url:
        return "store"
    try:
        parts = urlsplit(url)
    except ValueError:
        raise AdapterError(f"not a valid events URL: {redact(url)}") from None
    servers = parts.netloc.rpartition("@")[2]
    if "," in servers:  # several bootstrap servers (kafka://a:9092,b:9092): as listed
        return f"{parts.scheme}://{servers.lower()}{parts.path}"
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise AdapterError(f"not a valid events URL: {redact(url)}") from None
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parts.scheme}://{netloc}{parts.path}"


@asynccontextmanager
async def connect(
    url: str,
    *,
    events: str | None = None,
    roles: str | None = None,
    timeouts: str | None = None,
    **options: Any,
) -> AsyncIterator[Backend]:
    """Open the streamer, record store, role scheduler and timeout store for ``url``.

    ``memory://`` (in-process), ``sqlite:///relative.db`` or ``sqlite:////abs/path.db``,
    ``postgresql://user:password@host:5432/db``, ``mysql://…`` (or ``mariadb://``).
    ``options`` go to the backend of ``url`` (each other URL takes its options from its
    own query string). Closing the context closes the connections. Raises
    ``AdapterError`` for a bad URL.

    ``events``, ``roles`` and ``timeouts`` take that part from another URL (a broker's,
    ``redis://…`` or ``nats://…``, or another backend's); ``url`` gives the record store
    and every part not named. With ``events`` elsewhere the record store keeps a
    transactional outbox, which the workflow's relay sends on. Where a deployment's events
    go is recorded in its store on first use (``PinsEventLocation``); a process configured
    to send them elsewhere gets an ``AdapterError`` instead of splitting the event stream.
    """
    named: tuple[tuple[Part, str | None], ...] = (
        ("events", events),
        ("roles", roles),
        ("timeouts", timeouts),
    )
    elsewhere = {part: at for part, at in named if at is not None and at != url}
    entry = _entry(url)
    if entry.parts_only:
        raise AdapterError(
            f"{_scheme(url)}:// keeps no records: name a record store first "
            "(e.g. connect('postgresql://…', events='nats://…'))"
        )
    if not elsewhere:
        async with _opener(url)(url, **options) as backend:
            await _check_event_location(backend, "store")
            yield backend
        return
    if "events" in elsewhere and entry.publishes:
        options.setdefault("publish_events", False)
    async with AsyncExitStack() as stack:
        main = await stack.enter_async_context(_opener(url)(url, **options))
        opened: dict[str, Parts | Backend] = {}
        taken: dict[str, object] = {}
        for part, part_url in elsewhere.items():
            source = opened.get(part_url)
            if source is None:
                source = opened[part_url] = await stack.enter_async_context(
                    _parts_opener(part_url)(part_url)
                )
            taken[_ATTRIBUTE[part]] = _part_of(source, part, part_url)
        await _check_event_location(main, event_location(elsewhere.get("events"), url))
        yield MixedBackend(
            url,
            cast(EventStreamer, taken.get("streamer", main.streamer)),
            main.record_store,
            cast(RoleScheduler, taken.get("role_scheduler", main.role_scheduler)),
            cast(TimeoutStore, taken.get("timeout_store", main.timeout_store)),
            events_url=elsewhere.get("events", url),
            roles_url=elsewhere.get("roles", url),
            timeouts_url=elsewhere.get("timeouts", url),
        )


@asynccontextmanager
async def open_unchecked(url: str, **options: Any) -> AsyncIterator[Backend]:
    """``url``'s own backend, without the check of where events go (for the tool that
    records a new location: ``conveyor migrate --move-events``)."""
    if _entry(url).parts_only:
        raise AdapterError(f"{_scheme(url)}:// keeps no records")
    async with _opener(url)(url, **options) as backend:
        yield backend


def _parts_opener(url: str) -> PartsOpener:
    return cast(PartsOpener, _load(url, _entry(url).opener))


def _part_of(source: Parts | Backend, part: Part, url: str) -> object:
    found = getattr(source, _ATTRIBUTE[part], None)
    if found is None:
        given = [name for name, attr in _ATTRIBUTE.items() if getattr(source, attr, None)]
        raise AdapterError(
            f"{_scheme(url)}:// gives no {part} (it gives: {', '.join(given) or 'nothing'})"
        )
    return found


async def _check_event_location(backend: Backend, location: str) -> None:
    store = backend.record_store
    if not isinstance(store, PinsEventLocation):
        return
    pinned = await store.pin_event_location(location)
    if pinned != location:

        def shown(where: str) -> str:
            return "the record store's own event log" if where == "store" else where

        raise AdapterError(
            f"this deployment's events go to {shown(pinned)}, but this process would send "
            f"them to {shown(location)}: give the same events URL to every process "
            "(connect(..., events=URL), --events URL), or move the events as "
            "docs/deployments.md describes"
        )


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
