"""Kafka topic names for conveyor's topic names: an injective escaping.

Kafka allows ``[a-zA-Z0-9._-]`` in a topic name, at most 249 characters, and treats ``.``
and ``_`` as the same in its metric names (it refuses a topic that collides with another
that way). conveyor's topic names hold spaces, dots and any other character, so
``escape`` keeps ASCII letters, digits and ``-``, writes ``_`` as ``__`` and every other
character as ``_`` followed by the two lowercase hex digits of each of its UTF-8 bytes.
Two different names never escape to the same topic; a name whose escaped form is too long
is refused (``AdapterError``) rather than cut, which could make two names collide.
"""

from __future__ import annotations

import string
from typing import Final

from ..._errors import AdapterError

__all__ = ["MAX_TOPIC_LENGTH", "escape", "unescape"]

MAX_TOPIC_LENGTH: Final = 249
_KEPT: Final = frozenset(string.ascii_letters + string.digits + "-")


def escape(name: str, prefix: str = "") -> str:
    """The Kafka topic of conveyor topic ``name`` (``prefix`` goes before it, as given).

    Raises ``AdapterError`` for an empty name or one whose topic would pass 249 characters.
    """
    if not name:
        raise AdapterError("a Kafka topic needs a non-empty name")
    parts: list[str] = [prefix]
    for char in name:
        if char in _KEPT:
            parts.append(char)
        elif char == "_":
            parts.append("__")
        else:
            parts.extend(f"_{byte:02x}" for byte in char.encode("utf-8"))
    topic = "".join(parts)
    if len(topic) > MAX_TOPIC_LENGTH:
        raise AdapterError(
            f"the Kafka topic for {name[:60]!r}... would be {len(topic)} characters long; "
            f"Kafka allows {MAX_TOPIC_LENGTH}: use a shorter workflow name"
        )
    return topic


def unescape(topic: str, prefix: str = "") -> str:
    """The conveyor name ``escape`` made ``topic`` from. Raises ``AdapterError`` if
    ``topic`` is not such an escape."""
    if not topic.startswith(prefix):
        raise AdapterError(f"{topic!r} does not start with the prefix {prefix!r}")
    body, out, i = topic[len(prefix) :], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char in _KEPT:
            out += char.encode()
            i += 1
        elif body[i : i + 2] == "__":
            out += b"_"
            i += 2
        else:
            try:
                out.append(int(body[i + 1 : i + 3], 16))
            except ValueError:
                raise AdapterError(f"{topic!r} is not an escaped conveyor topic") from None
            i += 3
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise AdapterError(f"{topic!r} is not an escaped conveyor topic") from None
