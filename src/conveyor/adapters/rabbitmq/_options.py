"""Settings of the RabbitMQ adapters, from keyword arguments or the URL's query string.

``rabbitmq-stream://user:password@host:5552/vhost?prefix=orders&max_age=86400``: the
stream protocol's URL (the ``rabbitmq_stream`` plugin; 5552 by default). The path is the
virtual host, percent-decoded (``/`` or nothing for the default ``/``, ``/%2F`` too). Every
option is checked (type and range) when ``RabbitOptions`` is made, with the message
format of ``conveyor.adapters._values``; the URL's password never shows in a message.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from ..._errors import AdapterError
from ..._urls import redact
from .._values import Kind, integer, numbers, prefix, query_options

__all__ = ["DEFAULT_PORT", "MAX_PREFIX_CHARS", "SCHEMES", "Endpoint", "RabbitOptions", "split_url"]

SCHEMES: Final = ("rabbitmq-stream",)
DEFAULT_PORT: Final = 5552
MAX_PREFIX_CHARS: Final = 32


@dataclass(frozen=True, slots=True)
class RabbitOptions:
    """How the adapters use the RabbitMQ node. Every field can also be given in the URL's
    query string; keyword arguments win. Durations are in seconds."""

    prefix: str = "conveyor"
    """First part of every stream name (``[A-Za-z0-9_-]``), so that several installations
    share a node."""
    max_age: float = 7 * 86_400.0
    """Events are kept at least this long in their topic's stream (RabbitMQ removes whole
    segments past it; 0 keeps them until ``max_length_bytes`` or the stream is deleted)."""
    max_length_bytes: int = 0
    """Most bytes a topic's stream keeps (whole old segments go first; 0: no limit)."""
    max_segment_size_bytes: int = 0
    """Size of a stream's segment files (0: the node's default, 500 MB)."""
    credit: int = 8
    """Chunks a receiver lets the node send ahead of what it has handed out."""
    max_buffer: int = 2_000
    """A receiver holding this many events it has not handed out asks for no more chunks."""
    dedupe_window: int = 10_000
    """A receiver hands out only the first copy of an engine event (same run ID and record
    version) among this many offsets (the relay sends again after a crash; 0: off)."""
    connect_timeout: float = 5.0
    request_timeout: float = 5.0
    """Longest wait for an answer of the node (a request, a publish confirm)."""
    heartbeat: int = 60
    """Heartbeat period the client asks for (the node's may be shorter; 0: none)."""

    def __post_init__(self) -> None:
        _check(self)

    def replace(self, **changes: Any) -> RabbitOptions:
        """A copy with some fields changed (unknown names raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the node is and who the client is (``str()`` never shows the password)."""

    host: str
    port: int
    vhost: str
    username: str
    password: str = dataclasses.field(repr=False)
    url: str = dataclasses.field(repr=False)
    """The URL as given (for scrubbing driver messages); shown redacted."""

    def __str__(self) -> str:
        return redact(self.url)


_FIELDS = {f.name: f for f in dataclasses.fields(RabbitOptions)}
_KINDS: dict[str, Kind] = {
    "prefix": "text",
    "max_length_bytes": "integer",
    "max_segment_size_bytes": "integer",
    "credit": "integer",
    "max_buffer": "integer",
    "dedupe_window": "integer",
    "heartbeat": "integer",
}
_AT_LEAST = {"max_age": 0.0}
_ABOVE = {"connect_timeout": 0.0, "request_timeout": 0.0}
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+$")
_ALLOWED = "ASCII letters, digits, underscores and hyphens"


def _check(options: RabbitOptions) -> None:
    """Raise ``AdapterError`` for the first option of the wrong type or out of range."""
    prefix(options.prefix, max_bytes=MAX_PREFIX_CHARS, pattern=_PREFIX, allowed=_ALLOWED)
    integer("max_length_bytes", options.max_length_bytes, at_least=0)
    integer("max_segment_size_bytes", options.max_segment_size_bytes, at_least=0)
    integer("credit", options.credit, at_least=1)
    if options.credit > 1000:
        raise AdapterError(f"option credit={options.credit} must be at most 1000")
    integer("max_buffer", options.max_buffer, at_least=1)
    integer("heartbeat", options.heartbeat, at_least=0)
    integer("dedupe_window", options.dedupe_window, at_least=0)
    values = {name: getattr(options, name) for name in _FIELDS}
    numbers(values, skip=_KINDS, at_least=_AT_LEAST, above=_ABOVE)


def split_url(url: str, options: dict[str, Any]) -> tuple[Endpoint, RabbitOptions]:
    """The endpoint and the options of a ``rabbitmq-stream://`` URL.

    Raises ``AdapterError`` for another URL or an unknown URL option, ``TypeError`` for an
    unknown keyword option.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AdapterError(f"not a valid RabbitMQ stream URL: {redact(url)}") from None
    if parts.scheme not in SCHEMES:
        raise AdapterError(f"not a RabbitMQ stream URL (rabbitmq-stream://): {redact(url)}")
    if not parts.hostname:
        raise AdapterError(
            f"a RabbitMQ stream URL names a node (rabbitmq-stream://host:5552): {redact(url)}"
        )
    given = query_options(
        parts.query,
        options,
        fields=_FIELDS,
        kinds=_KINDS,
        scheme="rabbitmq-stream://",
        shown_url=redact(url),
    )
    settings = RabbitOptions(**given)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    endpoint = Endpoint(
        host=parts.hostname,
        port=port or DEFAULT_PORT,
        vhost=unquote(path) or "/",
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        url=url,
    )
    return endpoint, settings
