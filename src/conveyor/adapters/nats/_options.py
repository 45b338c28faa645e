"""Settings of the NATS adapters, from keyword arguments or the URL's query string.

``nats://user:password@host:4222?prefix=orders&max_age=86400`` (``tls://`` too). Every
option is checked (type and range) when ``NatsOptions`` is made, with the message format
of ``conveyor.adapters._values``; the URL's password never shows in a message.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from ..._errors import AdapterError
from ..._urls import redact
from .._values import Kind, at_most, integer, numbers, prefix, query_options, show, text

__all__ = ["MAX_PREFIX_CHARS", "SCHEMES", "NatsOptions", "split_url"]

SCHEMES: Final = ("nats", "tls")
MAX_PREFIX_CHARS: Final = 32
"""The longest ``prefix``: with a token of ``_names.MAX_TOKEN`` characters every stream
name stays under NATS's 255."""


@dataclass(frozen=True, slots=True)
class NatsOptions:
    """How the adapters use the NATS server. Every field can also be given in the URL's
    query string; keyword arguments win. Durations are in seconds."""

    prefix: str = "conveyor"
    """First part of every stream, subject and bucket name (``[A-Za-z0-9_-]``), so that
    several installations share a server."""
    max_age: float = 7 * 86_400.0
    """Events are kept this long in their topic's stream (limits-based retention; 0 keeps
    them until the stream is deleted)."""
    replicas: int = 1
    """Replicas of each stream and bucket (a clustered JetStream: 3 or 5)."""
    storage: str = "file"
    """``file`` or ``memory`` storage for the streams and the bucket."""
    duplicate_window: float = 120.0
    """A second copy of an engine event (same run ID and record version) sent within this
    long is dropped by the server (``Nats-Msg-Id``)."""
    ack_wait: float = 30.0
    """An event handed out and neither acknowledged nor kept in progress for this long
    comes again (a receiver that is alive tells the server every ``ack_wait / 3``)."""
    fetch_batch: int = 100
    """Most events one pull request asks for (a receiver holds at most this many it has
    not handed out yet)."""
    recheck_interval: float = 5.0
    """A waiting receiver looks again this often without a doorbell (a lost doorbell, events
    NAKed elsewhere or delivered again after ``ack_wait``)."""
    max_ack_pending: int = 10_000
    """Most events handed out and not yet acknowledged per receiver name."""
    connect_timeout: float = 5.0
    request_timeout: float = 5.0
    """Longest wait for an answer of the JetStream API (stream info, publish ack)."""
    role_ttl: float = 10.0
    """Lease duration (the key-value bucket's ``max_age``)."""
    role_renew: float = 1.0
    """Renewal and look-around period of the role scheduler (also its retry interval)."""
    role_grace: float = 2.0
    """How long a free role waits for the member it is assigned to before any may take it."""

    def __post_init__(self) -> None:
        _check(self)

    def replace(self, **changes: Any) -> NatsOptions:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(NatsOptions)}
_KINDS: dict[str, Kind] = {
    "prefix": "text",
    "storage": "text",
    "replicas": "integer",
    "fetch_batch": "integer",
    "max_ack_pending": "integer",
}
_AT_LEAST = {"max_age": 0.0, "duplicate_window": 0.0, "role_grace": 0.0}
_ABOVE = {
    "ack_wait": 0.0,
    "recheck_interval": 0.0,
    "connect_timeout": 0.0,
    "request_timeout": 0.0,
    "role_ttl": 0.0,
    "role_renew": 0.0,
}
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+$")
_ALLOWED = "ASCII letters, digits, underscores and hyphens"


def _check(options: NatsOptions) -> None:
    """Raise ``AdapterError`` for the first option of the wrong type or out of range."""
    prefix(options.prefix, max_bytes=MAX_PREFIX_CHARS, pattern=_PREFIX, allowed=_ALLOWED)
    text("storage", options.storage)
    if options.storage not in ("file", "memory"):
        raise AdapterError(f"option storage={options.storage!r} must be 'file' or 'memory'")
    integer("replicas", options.replicas, at_least=1)
    integer("fetch_batch", options.fetch_batch, at_least=1)
    integer("max_ack_pending", options.max_ack_pending, at_least=1)
    values = {name: getattr(options, name) for name in _FIELDS}
    numbers(values, skip=_KINDS, at_least=_AT_LEAST, above=_ABOVE)
    ttl = options.role_ttl
    at_most("role_renew", options.role_renew, ttl / 3, f"role_ttl / 3 (role_ttl={show(ttl)})")
    if 0 < options.max_age < options.duplicate_window:
        raise AdapterError(
            f"option duplicate_window={show(options.duplicate_window)} must be at most "
            f"max_age (max_age={show(options.max_age)})"
        )


def split_url(url: str, options: dict[str, Any]) -> tuple[str, NatsOptions]:
    """The server URL (query string removed) and the options of a ``nats://`` URL.

    Raises ``AdapterError`` for another URL or an unknown URL option, ``TypeError`` for an
    unknown keyword option.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise AdapterError(f"not a valid NATS URL: {redact(url)}") from None
    if parts.scheme not in SCHEMES:
        raise AdapterError(f"not a NATS URL (nats:// or tls://): {redact(url)}")
    if not parts.hostname:
        raise AdapterError(f"a NATS URL names a server (nats://host:4222): {redact(url)}")
    given = query_options(
        parts.query, options, fields=_FIELDS, kinds=_KINDS, scheme="nats://", shown_url=redact(url)
    )
    settings = NatsOptions(**given)
    server = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return server, settings
