"""The few NATS protocol pieces conveyor builds and reads itself on its hot paths.

A header block is ``NATS/1.0[ <status>[ <description>]]\\r\\n`` then ``Name: value\\r\\n``
lines and an empty line. A status message (a pull's end, a publish nobody answered)
has a status on its first line and no payload; a stored message published with headers
has none there. Subjects and header values here are conveyor's own (escaped names,
hex digests): no validation.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ACK", "header_block", "hpub", "pub", "status"]

ACK = b"+ACK"
_VERSION = b"NATS/1.0"
_CRLF = b"\r\n"


def status(headers: bytes | None) -> tuple[str, str] | None:
    """The status code and description of a status message's header block, else ``None``
    (no headers, or headers without a status)."""
    if headers is None or not headers.startswith(_VERSION) or headers[8:9] != b" ":
        return None
    end = headers.find(_CRLF)
    line = headers[9 : end if end >= 0 else len(headers)].decode("utf-8", "replace")
    code, _, description = line.strip().partition(" ")
    return code, description.strip()


def header_block(headers: Mapping[str, str]) -> bytes:
    """The header block carrying ``headers`` (names and values without line breaks)."""
    lines = [_VERSION]
    lines.extend(f"{name}: {value}".encode() for name, value in headers.items())
    lines.append(b"")
    lines.append(b"")
    return _CRLF.join(lines)


def hpub(subject: bytes, reply: bytes, headers: bytes, payload: bytes) -> bytes:
    """An ``HPUB`` command: ``payload`` with the header block ``headers``."""
    size = len(headers)
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
        subject,
        reply,
        size,
        size + len(payload),
        headers,
        payload,
    )


def pub(subject: bytes, payload: bytes, reply: bytes = b"") -> bytes:
    """A ``PUB`` command (with a reply subject if one is given)."""
    if reply:
        return b"PUB %s %s %d\r\n%s\r\n" % (subject, reply, len(payload), payload)
    return b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload)
