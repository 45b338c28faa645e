"""Settings of the PostgreSQL backend, from keyword arguments or the URL's query string.

Every option is checked (type and range) when ``PostgresOptions`` is made, with the
message format of ``conveyor.adapters._values``; the table prefix is limited so that every
table and index name fits PostgreSQL's 63-byte identifiers (``MAX_TABLE_PREFIX_BYTES``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..._errors import AdapterError
from ..._kit._hash import fnv1a64
from ..._urls import redact
from .._values import Kind, at_most, boolean, integer, numbers, parse, parse_or_none, show, text

__all__ = ["MAX_TABLE_PREFIX_BYTES", "PostgresOptions", "Tables", "quote_ident", "split_url"]

_IDENTIFIER_BYTES: Final = 63
"""PostgreSQL's longest identifier (``NAMEDATALEN - 1``): longer ones are cut silently."""

_LONGEST_TABLE: Final = "schema_migrations"

MAX_TABLE_PREFIX_BYTES: Final = _IDENTIFIER_BYTES - len(_LONGEST_TABLE)
"""The longest ``table_prefix`` (46 bytes in UTF-8): every table name then fits in 63
bytes, and every index name is made to fit (see ``Tables.index``)."""


@dataclass(frozen=True, slots=True)
class PostgresOptions:
    """How the backend uses the database. Every field can also be given in the URL's query
    string (``postgresql://host/db?schema=orders&role_ttl=5``); keyword arguments win.

    Durations are in seconds.
    """

    schema: str = "conveyor"
    """Schema holding conveyor's tables (created by ``migrate``)."""
    table_prefix: str = ""
    """Prefix of every table name, for several conveyor installations in one schema."""
    migrate: bool = False
    """Apply pending migrations when the backend opens (else a missing schema is an error)."""
    publish_events: bool = True
    """The record store appends each write's event to this database's event log itself
    (``PublishesEvents``). False: it keeps an outbox, which the workflow's relay sends to
    its streamer (``conveyor.connect(url, events=...)`` sets this when events go elsewhere)."""
    history: bool = True
    """Keep every run's history (each write adds a row: its version's status, run state and
    reason; ``KeepsHistory``). False: ``open_backend`` builds
    ``PostgresRecordStoreWithoutHistory``, whose writes add none (failures are kept)."""
    pool_min: int = 2
    pool_max: int = 10
    """Connections kept by the pool; the role scheduler and the listener have one more each."""
    connect_timeout: float = 10.0
    poll_interval: float = 5.0
    """How often receivers and waiters look at the tables while the LISTEN connection is
    down (they wait for notifications only while it is up)."""
    listen_check_interval: float = 5.0
    """How often the LISTEN connection is pinged; a silently dead one is replaced."""
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
    """Events of a topic with no cursor at all (nobody consumes it, such as a workflow's
    run-state-change topic without hooks) are deleted after this long; ``None`` (the
    default): after ``event_retention``, as SQLite does."""
    cursor_retention: float = 7 * 86_400.0
    """Cursors not written for this long are dead (open receivers refresh theirs)."""
    timeout_retention: float = 86_400.0
    """Completed timeouts are kept this long (so repeated creates stay idempotent)."""

    def __post_init__(self) -> None:
        _check(self)

    def replace(self, **changes: Any) -> PostgresOptions:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    @property
    def unread_retention(self) -> float:
        """Seconds events of a topic without cursors are kept (``unread_event_retention``,
        else ``event_retention``)."""
        unread = self.unread_event_retention
        return self.event_retention if unread is None else unread


_FIELDS = {f.name: f for f in dataclasses.fields(PostgresOptions)}

# Options that are not numbers (every other one is), and the numbers' lower bounds.
_KINDS: dict[str, Kind] = {
    "schema": "text",
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
    "role_grace": 0.0,
    "prune_interval": 0.0,
    "event_retention": 0.0,
    "unread_event_retention": 0.0,
    "timeout_retention": 0.0,
}
_ABOVE = {
    "connect_timeout": 0.0,
    "poll_interval": 0.0,
    "listen_check_interval": 0.0,
    "role_ttl": 0.0,
    "role_renew": 0.0,
    "cursor_retention": 0.0,
}


def _check(options: PostgresOptions) -> None:
    """Raise ``AdapterError`` for the first option of the wrong type or out of range."""
    text("schema", options.schema, max_bytes=_IDENTIFIER_BYTES, empty=False)
    text("table_prefix", options.table_prefix, max_bytes=MAX_TABLE_PREFIX_BYTES)
    boolean("migrate", options.migrate)
    boolean("history", options.history)
    boolean("publish_events", options.publish_events)
    integer("pool_min", options.pool_min, at_least=0)
    integer("pool_max", options.pool_max, at_least=1)
    values = {name: getattr(options, name) for name in _FIELDS}
    numbers(values, skip=_KINDS, at_least=_AT_LEAST, above=_ABOVE, optional=_OPTIONAL)
    ttl = options.role_ttl
    at_most("role_renew", options.role_renew, ttl / 3, f"role_ttl / 3 (role_ttl={show(ttl)})")


def _convert(name: str, raw: str) -> object:
    kind = _KINDS.get(name, "number")
    return parse_or_none(name, raw, kind) if name in _OPTIONAL else parse(name, raw, kind)


def split_url(url: str, options: dict[str, Any]) -> tuple[str, PostgresOptions]:
    """The URL for the driver (conveyor's query parameters removed) and the options.

    Raises ``AdapterError`` for a URL that is not ``postgresql://``/``postgres://`` and
    ``TypeError`` for an unknown keyword option.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise AdapterError(f"not a valid PostgreSQL URL: {redact(url)}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise AdapterError(f"not a PostgreSQL URL: {redact(url)}")
    unknown = set(options) - set(_FIELDS)
    if unknown:
        raise TypeError(f"unknown postgresql:// options: {', '.join(sorted(unknown))}")
    from_url: dict[str, object] = {}
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _FIELDS:
            from_url[key] = _convert(key, value)
        else:
            kept.append((key, value))  # for the driver (sslmode, ...)
    settings = PostgresOptions(**{**from_url, **options})
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return dsn, settings


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class Tables:
    """The schema-qualified, quoted names of conveyor's tables in one installation."""

    __slots__ = ("channel", "names", "prefix", "schema")

    TABLES = (
        "records",
        "outbox",
        "topics",
        "events",
        "cursors",
        "timeouts",
        "roles",
        "members",
        "listeners",
        "failures",
        "history",
        "definitions",
        "settings",
        "schema_migrations",
    )

    def __init__(self, schema: str, prefix: str = "") -> None:
        text("table_prefix", prefix, max_bytes=MAX_TABLE_PREFIX_BYTES)
        self.schema: str = quote_ident(schema)
        self.prefix: str = prefix
        self.names: dict[str, str] = {
            t: f"{self.schema}.{quote_ident(prefix + t)}" for t in self.TABLES
        }
        # NOTIFY channel names are identifiers (at most 63 bytes): keep it short and fixed.
        self.channel: str = f"conveyor_{_short_hash(f'{schema}.{prefix}')}"

    def __getattr__(self, name: str) -> str:
        try:
            return self.names[name]
        except KeyError:
            raise AttributeError(name) from None

    def index(self, name: str) -> str:
        """The name of index (or constraint) ``name`` of this installation: the prefix and
        ``name``, cut to PostgreSQL's 63 bytes (at a character boundary) where longer.

        PostgreSQL itself would cut such a name the same way (with a notice), so existing
        schemas keep their names; with the prefix at most ``MAX_TABLE_PREFIX_BYTES`` long,
        at least 17 bytes of ``name`` remain, which keeps conveyor's index names distinct
        (``test_postgres_names`` checks every prefix length).
        """
        full = self.prefix + name
        encoded = full.encode("utf-8")
        if len(encoded) <= _IDENTIFIER_BYTES:
            return full
        return encoded[:_IDENTIFIER_BYTES].decode("utf-8", errors="ignore")

    def substitute(self, sql: str) -> str:
        """Replace ``{{table}}``, ``{{schema}}`` and ``"{{prefix}}name"`` (a quoted index
        or constraint name, see ``index``) placeholders in migration SQL."""
        out = _INDEX_NAME.sub(lambda m: quote_ident(self.index(m[1])), sql)
        out = out.replace("{{schema}}", self.schema).replace(
            "{{prefix}}", self.prefix.replace('"', '""')
        )
        for table, qualified in self.names.items():
            out = out.replace("{{" + table + "}}", qualified)
        return out


_INDEX_NAME = re.compile(r'"\{\{prefix\}\}(\w+)"')


def _short_hash(text: str) -> str:
    return f"{fnv1a64(text):016x}"
