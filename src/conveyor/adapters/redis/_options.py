"""Settings of the Redis adapters, from keyword arguments or the URL's query string.

``redis://:password@host:6379/0?key_prefix=wf&role_ttl=10`` (``rediss://`` for TLS,
``unix:///path/to/redis.sock?db=0`` for a socket). Every option is checked (type and
range) when ``RedisOptions`` is made, with the message format of
``conveyor.adapters._values``; errors and ``repr`` never show the password (``redact``).
The query string holds conveyor's options only (the connection itself is the URL's
scheme, user, password, host, port and database number).

Keys. Everything lives under ``key_prefix`` (``Keys``): a topic's stream is
``<prefix>:events:{<topic>}`` and its ID counter ``<prefix>:seq:{<topic>}`` (the topic
percent-escaped, so no name can reach into another prefix or key); the braces are a Redis
Cluster hash tag, so the send script touches one slot. A role's lease is
``<prefix>:role:<role>``, the members of the role scheduler one hash
``<prefix>:members``, a connector's cursor ``<prefix>:cursor:{<stream>}:<name>``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from ..._errors import AdapterError
from ..._urls import redact
from .._values import Kind, at_most, boolean, numbers, parse, show, text

__all__ = ["Keys", "RedisOptions", "SCHEMES", "split_url"]

SCHEMES: Final = ("redis", "rediss", "unix")
MAX_KEY_PREFIX_BYTES: Final = 200


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How the adapters use Redis. Every field can also be given in the URL's query string;
    keyword arguments win. Durations are in seconds."""

    key_prefix: str = "conveyor"
    """Prefix of every key, for several conveyor installations on one Redis database.

    There is no pool size: a client pipelines its commands on one connection of its own,
    and each open receiver and tail has one more, held while it blocks in ``XREADGROUP``
    or ``XREAD``."""
    connect_timeout: float = 5.0
    command_timeout: float = 10.0
    """Longest wait for a reply to a command (a blocking read: its block time plus this)."""
    read_block: float = 5.0
    """Longest a blocking read (``BLOCK``) waits on the server before it is sent again."""
    role_ttl: float = 10.0
    """Lease duration. A holder that stops renewing loses the role after this long."""
    role_renew: float = 1.0
    """Renewal and look-around period of the role scheduler (also its retry interval)."""
    role_grace: float = 2.0
    """How long a free role waits for the member it is assigned to before any member may
    take it, and how long a new member is up before holders hand it its share."""
    claim_idle: float = 30.0
    """An event handed out to a consumer and not acknowledged for this long is taken over
    (``XAUTOCLAIM``) by a receiver of the same name in another process, and delivered
    again: how a dead process's events are not lost."""
    trim_interval: float = 60.0
    """How often a streamer trims the topics it sends to (0 disables trimming)."""
    event_retention: float = 600.0
    """Events are kept at least this long, and then until every consumer group of the
    topic has acknowledged them."""
    publish_events: bool = True
    """Whether the record store of ``open_backend`` appends each write's event to the
    streamer's topic itself (no outbox, no relay); false keeps an outbox, for events on
    another streamer (``conveyor.connect(url, events=...)`` sets this when events go
    elsewhere)."""

    def __post_init__(self) -> None:
        _check(self)

    def replace(self, **changes: Any) -> RedisOptions:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    @property
    def keys(self) -> Keys:
        """The key names of this installation."""
        return Keys(self.key_prefix)


_FIELDS = {f.name: f for f in dataclasses.fields(RedisOptions)}
_KINDS: dict[str, Kind] = {
    "key_prefix": "text",
    "publish_events": "boolean",
}
_AT_LEAST = {"role_grace": 0.0, "trim_interval": 0.0, "event_retention": 0.0}
_ABOVE = {
    "connect_timeout": 0.0,
    "command_timeout": 0.0,
    "read_block": 0.0,
    "role_ttl": 0.0,
    "role_renew": 0.0,
    "claim_idle": 0.0,
}


def _check(options: RedisOptions) -> None:
    """Raise ``AdapterError`` for the first option of the wrong type or out of range."""
    text("key_prefix", options.key_prefix, max_bytes=MAX_KEY_PREFIX_BYTES, empty=False)
    boolean("publish_events", options.publish_events)
    values = {name: getattr(options, name) for name in _FIELDS}
    numbers(values, skip=_KINDS, at_least=_AT_LEAST, above=_ABOVE)
    ttl = options.role_ttl
    at_most("role_renew", options.role_renew, ttl / 3, f"role_ttl / 3 (role_ttl={show(ttl)})")


def split_url(url: str, options: dict[str, Any]) -> tuple[str, RedisOptions]:
    """The connection URL (without conveyor's query options) and the options of a
    ``redis://``, ``rediss://`` or ``unix://`` URL.

    Raises ``AdapterError`` for another URL or an unknown URL option, and ``TypeError``
    for an unknown keyword option.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise AdapterError(f"not a valid Redis URL: {redact(url)}") from None
    if parts.scheme not in SCHEMES:
        raise AdapterError(f"not a Redis URL (redis://, rediss:// or unix://): {redact(url)}")
    unknown = set(options) - set(_FIELDS)
    if unknown:
        raise TypeError(f"unknown redis:// options: {', '.join(sorted(unknown))}")
    from_url: dict[str, object] = {}
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "db" and parts.scheme == "unix":
            kept.append((key, value))  # a socket's database number is a query option
            continue
        if key not in _FIELDS:
            raise AdapterError(f"unknown redis:// URL option {key!r}: {redact(url)}")
        from_url[key] = parse(key, value, _KINDS.get(key, "number"))
    settings = RedisOptions(**{**from_url, **options})
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in kept)
    connect = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return connect, settings


def _escape(name: str) -> str:
    """A topic, role or stream name as a key part: percent-escaped, no ``:``, ``{`` or ``}``."""
    return quote(name, safe="")


class Keys:
    """The key names of one installation (one ``key_prefix``)."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix: str = prefix

    def stream(self, topic: str) -> str:
        """The stream of ``topic``'s events."""
        return f"{self.prefix}:events:{{{_escape(topic)}}}"

    def sequence(self, topic: str) -> str:
        """The counter of ``topic``'s event IDs (same hash slot as its stream)."""
        return f"{self.prefix}:seq:{{{_escape(topic)}}}"

    def role(self, role: str) -> str:
        """The lease of ``role``."""
        return f"{self.prefix}:role:{_escape(role)}"

    @property
    def members(self) -> str:
        """The role scheduler's members (a hash: member ID -> its heartbeat)."""
        return f"{self.prefix}:members"

    def cursor(self, stream: str, name: str) -> str:
        """A connector consumer's cursor on an outside ``stream``."""
        return f"{self.prefix}:cursor:{{{_escape(stream)}}}:{_escape(name)}"

    @property
    def pattern(self) -> str:
        """A ``SCAN MATCH`` pattern of every key of this installation."""
        special = str.maketrans({c: f"\\{c}" for c in "*?[]\\"})
        return f"{self.prefix.translate(special)}:*"
