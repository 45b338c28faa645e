"""Settings of the PostgreSQL backend, from keyword arguments or the URL's query string."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..._errors import AdapterError
from ..._kit._hash import fnv1a64

__all__ = ["PostgresOptions", "Tables", "quote_ident", "split_url"]


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
    unread_event_retention: float = 86_400.0
    """Events of a topic with no cursor at all are deleted after this long."""
    cursor_retention: float = 7 * 86_400.0
    """Cursors not written for this long are dead (open receivers refresh theirs)."""
    timeout_retention: float = 86_400.0
    """Completed timeouts are kept this long (so repeated creates stay idempotent)."""

    def replace(self, **changes: Any) -> PostgresOptions:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(PostgresOptions)}


def _convert(name: str, raw: str) -> object:
    kind = type(getattr(PostgresOptions(), name))
    if kind is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise AdapterError(f"option {name}={raw!r} is not a boolean")
    if kind is str:
        return raw
    try:
        return kind(raw)
    except ValueError:
        raise AdapterError(f"option {name}={raw!r} is not a {kind.__name__}") from None


def split_url(url: str, options: dict[str, Any]) -> tuple[str, PostgresOptions]:
    """The URL for the driver (conveyor's query parameters removed) and the options.

    Raises ``AdapterError`` for a URL that is not ``postgresql://``/``postgres://`` and
    ``TypeError`` for an unknown keyword option.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise AdapterError(f"not a PostgreSQL URL: {url!r}")
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
    if not settings.schema:
        raise AdapterError("the schema option must not be empty")
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
        "schema_migrations",
    )

    def __init__(self, schema: str, prefix: str = "") -> None:
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

    def substitute(self, sql: str) -> str:
        """Replace ``{{table}}``, ``{{schema}}`` and ``{{prefix}}`` (inside a quoted index
        name) placeholders in migration SQL."""
        out = sql.replace("{{schema}}", self.schema).replace(
            "{{prefix}}", self.prefix.replace('"', '""')
        )
        for table, qualified in self.names.items():
            out = out.replace("{{" + table + "}}", qualified)
        return out


def _short_hash(text: str) -> str:
    return f"{fnv1a64(text):016x}"
