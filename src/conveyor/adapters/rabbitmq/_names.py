"""Conveyor's topics and receiver names as RabbitMQ stream names and offset references.

RabbitMQ allows almost any UTF-8 in a stream (queue) name, up to 255 bytes, but a name
starting with ``amq.`` is reserved, and names are easier to read and type in
``rabbitmqctl`` without spaces or control characters. So a topic becomes its stream
``<prefix>.<escaped topic>``: ASCII letters, digits, ``_``, ``-`` and ``.`` stand for
themselves, and every other character (``%`` itself, spaces, non-ASCII) becomes ``%XX``
per byte of its UTF-8 encoding (upper-case hex), so ``sync user`` is ``sync%20user`` and
``a.b`` stays ``a.b``. Percent-decoding gives the topic back, so two topics never share a
stream; a prefix holds no ``.``, so installations with different prefixes never share
one either.

A receiver name is its offset reference in its topic's stream as it is (references are
per stream, up to 255 bytes of UTF-8). A stream name or a reference that would be longer
is refused with an ``AdapterError`` naming the limit, rather than shortened by a hash.
"""

from __future__ import annotations

import string
from typing import Final
from urllib.parse import quote, unquote

from ..._errors import AdapterError

__all__ = ["MAX_NAME_BYTES", "reference", "stream_name", "topic_of"]

MAX_NAME_BYTES: Final = 255
"""The longest stream name and offset reference, in bytes of UTF-8 (RabbitMQ's limit)."""

_SAFE: Final = string.ascii_letters + string.digits + "_-."


def stream_name(prefix: str, topic: str) -> str:
    """The stream of ``topic`` under ``prefix`` (see the module docstring)."""
    try:
        escaped = quote(topic, safe=_SAFE, encoding="utf-8", errors="strict")
    except UnicodeEncodeError:
        raise AdapterError(f"topic {topic!r} is not valid Unicode") from None
    name = f"{prefix}.{escaped}"
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        raise AdapterError(
            f"topic {topic!r} is too long for RabbitMQ: its stream name {name[:40]!r}... is "
            f"{size} bytes, at most {MAX_NAME_BYTES} are allowed (a shorter prefix or "
            "workflow name helps)"
        )
    return name


def topic_of(prefix: str, stream: str) -> str | None:
    """The topic whose stream is ``stream`` under ``prefix``, else ``None``."""
    head = f"{prefix}."
    if not stream.startswith(head):
        return None
    return unquote(stream[len(head) :], encoding="utf-8", errors="strict")


def reference(name: str) -> str:
    """The offset reference of receiver (or consumer) ``name``."""
    if not name:
        raise AdapterError("a RabbitMQ receiver name must not be empty (it names the cursor)")
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        raise AdapterError(f"receiver name {name!r} is not valid Unicode") from None
    if size > MAX_NAME_BYTES:
        raise AdapterError(
            f"receiver name {name[:40]!r}... is {size} bytes long in UTF-8; RabbitMQ keeps "
            f"offsets under names of at most {MAX_NAME_BYTES} bytes"
        )
    return name
