"""Conveyor's names (topics, receiver names, roles) as NATS names, escaped injectively.

NATS subjects forbid spaces and give ``.`` (token separator), ``*`` and ``>`` (wildcards)
a meaning; stream, consumer and key-value bucket names forbid those and path separators
too, and key-value keys allow only ``[-/_=.A-Za-z0-9]``. So a name becomes one *token*:
ASCII letters, digits, ``_`` and ``-`` stand for themselves, and every other character
(``=`` itself included) becomes ``=XX`` per byte of its UTF-8 encoding (upper-case hex),
so ``sync user`` is ``sync=20user``, ``a.b`` is ``a=2Eb``, ``*`` is ``=2A``. The empty
name is ``=`` alone (no escape is a lone ``=``). Decoding is unambiguous, so two different
names never share a token.

A token longer than ``MAX_TOKEN`` characters (names are kept under NATS's 255-character
limit on stream and consumer names) is cut and ends with ``=_`` and 32 hex digits of the
SHA-256 of the name (``=_`` never occurs in an unshortened token): different names then
share a token only if their hashes collide.

The streamer's objects in an installation with prefix ``P`` (``[A-Za-z0-9_-]``):

- a topic's stream is ``P_ev=<token>``, its one subject ``P.ev.<token>``, and its doorbell
  (a core NATS subject outside every stream) ``P.bell.<token>``;
- a receiver's durable consumer is ``<token of its name>`` in its topic's stream;
- the role scheduler's key-value bucket is ``P_roles``.

The first ``=`` of a stream name ends the prefix part (a prefix holds no ``=``), so
installations with different prefixes never share a stream or a subject.
"""

from __future__ import annotations

import hashlib
import string
from typing import Final

__all__ = [
    "MAX_TOKEN",
    "bell",
    "consumer_name",
    "escape",
    "roles_bucket",
    "stream_name",
    "subject",
    "unescape",
]

MAX_TOKEN: Final = 200
"""The longest token; longer ones are cut and end with a hash (module docstring)."""

_SAFE: Final = frozenset(string.ascii_letters + string.digits + "_-")
_HASH_MARK: Final = "=_"


def escape(name: str) -> str:
    """``name`` as one NATS token (see the module docstring)."""
    if not name:
        return "="
    parts: list[str] = []
    for ch in name:
        if ch in _SAFE:
            parts.append(ch)
        else:
            parts.extend(f"={byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))
    token = "".join(parts)
    if len(token) <= MAX_TOKEN:
        return token
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    keep = MAX_TOKEN - len(_HASH_MARK) - len(digest)
    cut = token[:keep]
    tail = cut.rfind("=")
    if tail > keep - 3:  # do not end on half an escape
        cut = cut[:tail]
    return f"{cut}{_HASH_MARK}{digest}"


def unescape(token: str) -> str:
    """The name ``escape`` made ``token`` from (not for shortened tokens)."""
    if token == "=":
        return ""
    if _HASH_MARK in token:
        raise ValueError(f"{token!r} is a shortened token: its name is not recoverable")
    out = bytearray()
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "=":
            out.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            out += ch.encode()
            i += 1
    return out.decode("utf-8", "surrogatepass")


def stream_name(prefix: str, topic: str) -> str:
    """The stream that holds ``topic``'s events."""
    return f"{prefix}_ev={escape(topic)}"


def subject(prefix: str, topic: str) -> str:
    """The subject ``topic``'s events are published on."""
    return f"{prefix}.ev.{escape(topic)}"


def bell(prefix: str, topic: str) -> str:
    """The core subject senders ring after ``topic``'s events are stored."""
    return f"{prefix}.bell.{escape(topic)}"


def consumer_name(name: str) -> str:
    """The durable consumer of receivers named ``name`` (in their topic's stream)."""
    return escape(name)


def roles_bucket(prefix: str) -> str:
    """The key-value bucket of the role scheduler."""
    return f"{prefix}_roles"
