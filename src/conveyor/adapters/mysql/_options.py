"""Settings of the MySQL/MariaDB backend, from keyword arguments or the URL's query string.

``mysql://user:password@host:3306/database?table_prefix=app_&role_ttl=5`` (``mariadb://``
alike). Every option is checked (type and range) when ``MySQLOptions`` is made, with the
message format of ``conveyor.adapters._values``; the table prefix is limited so that every
table and index name fits MySQL's 64-character identifiers (``MAX_TABLE_PREFIX_CHARS``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from ..._errors import AdapterError
from ..._urls import redact
from .._values import Kind, at_most, boolean, integer, numbers, parse, parse_or_none, show, text

__all__ = [
    "MAX_TABLE_PREFIX_CHARS",
    "ConnectArgs",
    "MySQLOptions",
    "Tables",
    "quote_ident",
    "split_url",
]

_IDENTIFIER_CHARS: Final = 64
_LONGEST_TABLE: Final = "schema_migrations"
MAX_TABLE_PREFIX_CHARS: Final = _IDENTIFIER_CHARS - len(_LONGEST_TABLE)
"""The longest ``table_prefix`` (47 characters): every table name then fits in 64, and
every index name is made to fit (``Tables.index``)."""

SCHEMES: Final = ("mysql", "mariadb")


@dataclass(frozen=True, slots=True)
class MySQLOptions:
    """How the backend uses the database. Every field can also be given in the URL's query
    string; keyword arguments win. Durations are in seconds."""

    table_prefix: str = ""
    """Prefix of every table name, for several conveyor installations in one database."""
    migrate: bool = False
    """Apply pending migrations when the backend opens (else a missing schema is an error)."""
    publish_events: bool = True
    """The record store appends each write's event to this database's event log itself
    (``PublishesEvents``). False: it keeps an outbox, which the workflow's relay sends to
    its streamer (``conveyor.connect(url, events=...)`` sets this when events go elsewhere)."""
    history: bool = True
    """Keep every run's history (``KeepsHistory``); False: the writes add no history rows."""
    pool_min: int = 2
    pool_max: int = 10
    """Connections kept by the pool (the role scheduler has one more)."""
    connect_timeout: float = 10.0
    acquire_timeout: float = 30.0
    """Longest wait for a free pooled connection before ``AdapterUnavailable``."""
    poll_min: float = 0.002
    """Receivers poll this often while the event log is busy (adaptive polling)..."""
    poll_busy: float = 0.5
    """...that is, for this long after the last sign of activity (a poll or read that found
    other processes' events, or a send from this process)..."""
    poll_max: float = 1.0
    """...then backing off (doubling from ``poll_min``) to this while it stays idle. Writes
    in this process wake its receivers at once; the polling finds other processes' writes."""
    ack_flush_interval: float = 0.05
    """Receivers' cursors are written at most this often (acks in between are batched)."""
    role_ttl: float = 10.0
    """Lease duration. A holder that stops renewing loses the role after this long."""
    role_renew: float = 1.0
    """Renewal and look-around period of the role scheduler (also its retry interval)."""
    role_grace: float = 2.0
    """How long a free role waits for the member it is assigned to before any member may take it."""
    prune_interval: float = 60.0
    """How often one process of the installation prunes the tables (0 disables pruning)."""
    event_retention: float = 600.0
    """Events are kept at least this long, and then until every cursor of the topic passed them."""
    unread_event_retention: float | None = None
    """Events of a topic with no cursor at all are deleted after this long; ``None``: after
    ``event_retention``."""
    cursor_retention: float = 7 * 86_400.0
    """Cursors not written for this long are dead (open receivers refresh theirs)."""
    timeout_retention: float = 86_400.0
    """Completed timeouts are kept this long (so repeated creates stay idempotent)."""

    def __post_init__(self) -> None:
        _check(self)

    def replace(self, **changes: Any) -> MySQLOptions:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    @property
    def unread_retention(self) -> float:
        unread = self.unread_event_retention
        return self.event_retention if unread is None else unread


_FIELDS = {f.name: f for f in dataclasses.fields(MySQLOptions)}
_KINDS: dict[str, Kind] = {
    "table_prefix": "text",
    "migrate": "boolean",
    "publish_events": "boolean",
    "history": "boolean",
    "pool_min": "integer",
    "pool_max": "integer",
}
_OPTIONAL = ("unread_event_retention",)
"""Options that may be ``None`` (``none`` or empty in a URL)."""
_AT_LEAST = {
    "ack_flush_interval": 0.0,
    "poll_busy": 0.0,
    "role_grace": 0.0,
    "prune_interval": 0.0,
    "event_retention": 0.0,
    "unread_event_retention": 0.0,
    "timeout_retention": 0.0,
}
_ABOVE = {
    "connect_timeout": 0.0,
    "acquire_timeout": 0.0,
    "poll_min": 0.0,
    "poll_max": 0.0,
    "role_ttl": 0.0,
    "role_renew": 0.0,
    "cursor_retention": 0.0,
}
_PREFIX = re.compile(r"^[A-Za-z0-9_]*$")


def _check(options: MySQLOptions) -> None:
    """Raise ``AdapterError`` for the first option of the wrong type or out of range."""
    text("table_prefix", options.table_prefix, max_bytes=MAX_TABLE_PREFIX_CHARS)
    if not _PREFIX.match(options.table_prefix):
        raise AdapterError(
            f"option table_prefix={options.table_prefix!r} may hold only ASCII letters, "
            "digits and underscores"
        )
    boolean("migrate", options.migrate)
    boolean("history", options.history)
    boolean("publish_events", options.publish_events)
    integer("pool_min", options.pool_min, at_least=0)
    integer("pool_max", options.pool_max, at_least=1)
    values = {name: getattr(options, name) for name in _FIELDS}
    numbers(values, skip=_KINDS, at_least=_AT_LEAST, above=_ABOVE, optional=_OPTIONAL)
    ttl = options.role_ttl
    at_most("role_renew", options.role_renew, ttl / 3, f"role_ttl / 3 (role_ttl={show(ttl)})")
    at_most(
        "poll_min",
        options.poll_min,
        options.poll_max,
        f"poll_max (poll_max={show(options.poll_max)})",
    )


def _convert(name: str, raw: str) -> object:
    kind = _KINDS.get(name, "number")
    return parse_or_none(name, raw, kind) if name in _OPTIONAL else parse(name, raw, kind)


@dataclass(frozen=True, slots=True, repr=False)
class ConnectArgs:
    """Where and as whom to connect (the password never shows in ``repr``)."""

    host: str
    port: int
    user: str
    password: str
    database: str
    url: str
    """The URL as given (for masking its secrets in messages)."""

    def __repr__(self) -> str:
        return f"ConnectArgs({redact(self.url)!r})"


def split_url(url: str, options: dict[str, Any]) -> tuple[ConnectArgs, MySQLOptions]:
    """The connection arguments and the options of a ``mysql://``/``mariadb://`` URL.

    Raises ``AdapterError`` for another URL (or one without a database) and ``TypeError``
    for an unknown keyword option.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or 3306
    except ValueError:
        raise AdapterError(f"not a valid MySQL URL: {redact(url)}") from None
    if parts.scheme not in SCHEMES:
        raise AdapterError(f"not a MySQL URL (mysql:// or mariadb://): {redact(url)}")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise AdapterError(f"a MySQL URL names one database (mysql://host/db): {redact(url)}")
    unknown = set(options) - set(_FIELDS)
    if unknown:
        raise TypeError(f"unknown mysql:// options: {', '.join(sorted(unknown))}")
    from_url: dict[str, object] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _FIELDS:
            raise AdapterError(f"unknown mysql:// URL option {key!r}: {redact(url)}")
        from_url[key] = _convert(key, value)
    settings = MySQLOptions(**{**from_url, **options})
    args = ConnectArgs(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        url=url,
    )
    return args, settings


def quote_ident(name: str) -> str:
    """``name`` as a quoted MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"


class Tables:
    """The quoted names of conveyor's tables in one installation (one database)."""

    __slots__ = ("names", "prefix")

    TABLES = (
        "records",
        "outbox",
        "history",
        "failures",
        "definitions",
        "topics",
        "events",
        "cursors",
        "timeouts",
        "roles",
        "members",
        "settings",
        "schema_migrations",
    )

    def __init__(self, prefix: str = "") -> None:
        self.prefix: str = prefix
        self.names: dict[str, str] = {t: quote_ident(prefix + t) for t in self.TABLES}

    def __getattr__(self, name: str) -> str:
        try:
            return self.names[name]
        except KeyError:
            raise AttributeError(name) from None

    def index(self, name: str) -> str:
        """Index ``name`` of this installation: the prefix and ``name``, cut to 64."""
        return (self.prefix + name)[:_IDENTIFIER_CHARS]

    def substitute(self, sql: str) -> str:
        """Replace ``{{table}}`` and ``{{prefix}}name`` (an index name) in migration SQL."""
        out = _INDEX_NAME.sub(lambda m: quote_ident(self.index(m[1])), sql)
        for table, quoted in self.names.items():
            out = out.replace("{{" + table + "}}", quoted)
        return out


_INDEX_NAME = re.compile(r"`\{\{prefix\}\}(\w+)`")
