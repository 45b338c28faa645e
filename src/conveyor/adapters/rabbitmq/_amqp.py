"""AMQP 1.0 messages, the format other stream clients write (the Java, .NET, Go and
``rstream`` clients), as far as the connector reads them: a message's sections
(properties, application properties, data, amqp-value) and the type system's values.

``encode_message`` writes such a message (what an outside producer in Python could use,
and what the tests seed streams with); ``decode_message`` reads one into
``AmqpMessage``, raising ``ValueError`` for bytes that are not one.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

__all__ = ["AmqpMessage", "decode_message", "encode_message"]

_PROPERTIES: Final = 0x73
_APPLICATION_PROPERTIES: Final = 0x74
_DATA: Final = 0x75
_AMQP_VALUE: Final = 0x77
_SECTIONS: Final = {
    "amqp:header:list": 0x70,
    "amqp:delivery-annotations:map": 0x71,
    "amqp:message-annotations:map": 0x72,
    "amqp:properties:list": 0x73,
    "amqp:application-properties:map": 0x74,
    "amqp:data:binary": 0x75,
    "amqp:amqp-sequence:list": 0x76,
    "amqp:amqp-value:*": 0x77,
    "amqp:footer:map": 0x78,
}


@dataclass(frozen=True, slots=True)
class AmqpMessage:
    """What the connector reads of an AMQP 1.0 message."""

    body: bytes = b""
    """The data sections joined, or an amqp-value that is a string (UTF-8) or binary."""
    message_id: str | None = None
    """``properties.message-id`` as text (a number in decimal, a UUID in its usual form)."""
    subject: str | None = None
    creation_time: datetime | None = None
    application_properties: Mapping[str, str] = field(default_factory=dict)
    """Application properties, each value as text (``true``, ``12``, ...)."""


# --------------------------------------------------------------------------- writing


def _str(value: str) -> bytes:
    raw = value.encode()
    if len(raw) < 256:
        return b"\xa1" + bytes([len(raw)]) + raw
    return b"\xb1" + struct.pack(">I", len(raw)) + raw


def _bin(value: bytes) -> bytes:
    if len(value) < 256:
        return b"\xa0" + bytes([len(value)]) + value
    return b"\xb0" + struct.pack(">I", len(value)) + value


def _described(code: int, value: bytes) -> bytes:
    return b"\x00\x53" + bytes([code]) + value


def _compound(constructor: int, count: int, items: bytes) -> bytes:
    return bytes([constructor]) + struct.pack(">II", len(items) + 4, count) + items


def encode_message(
    body: bytes,
    *,
    message_id: str | None = None,
    subject: str | None = None,
    creation_time: datetime | None = None,
    application_properties: Mapping[str, str] | None = None,
) -> bytes:
    """An AMQP 1.0 message: properties (if any are given), application properties (string
    values) and one data section holding ``body``."""
    out = b""
    fields: list[bytes] = [
        _str(message_id) if message_id is not None else b"\x40",
        b"\x40",  # user-id
        b"\x40",  # to
        _str(subject) if subject is not None else b"\x40",
        b"\x40",  # reply-to
        b"\x40",  # correlation-id
        b"\x40",  # content-type
        b"\x40",  # content-encoding
        b"\x40",  # absolute-expiry-time
    ]
    if creation_time is not None:
        fields.append(b"\x83" + struct.pack(">q", round(creation_time.timestamp() * 1000)))
    while fields and fields[-1] == b"\x40":
        fields.pop()
    if fields:
        out += _described(_PROPERTIES, _compound(0xD0, len(fields), b"".join(fields)))
    if application_properties:
        pairs = b"".join(_str(k) + _str(v) for k, v in application_properties.items())
        out += _described(
            _APPLICATION_PROPERTIES, _compound(0xD1, 2 * len(application_properties), pairs)
        )
    return out + _described(_DATA, _bin(body))


# --------------------------------------------------------------------------- reading

_FIXED: Final = {
    0x50: (1, ">B"),
    0x51: (1, ">b"),
    0x52: (1, ">B"),
    0x53: (1, ">B"),
    0x54: (1, ">b"),
    0x55: (1, ">b"),
    0x56: (1, ">B"),
    0x60: (2, ">H"),
    0x61: (2, ">h"),
    0x70: (4, ">I"),
    0x71: (4, ">i"),
    0x72: (4, ">f"),
    0x73: (4, ">I"),
    0x80: (8, ">Q"),
    0x81: (8, ">q"),
    0x82: (8, ">d"),
}
_CONSTANTS: Final[dict[int, object]] = {0x40: None, 0x41: True, 0x42: False, 0x43: 0, 0x44: 0}


@dataclass(frozen=True, slots=True)
class _Described:
    descriptor: object
    value: object


def _value(data: bytes, pos: int) -> tuple[object, int]:  # noqa: C901 - one branch per type
    code = data[pos]
    pos += 1
    if code == 0x00:
        descriptor, pos = _value(data, pos)
        value, pos = _value(data, pos)
        return _Described(descriptor, value), pos
    if code in _CONSTANTS:
        return _CONSTANTS[code], pos
    if code == 0x45:
        return [], pos
    fixed = _FIXED.get(code)
    if fixed is not None:
        size, fmt = fixed
        (number,) = struct.unpack_from(fmt, data, pos)
        if code == 0x56:
            number = bool(number)
        return number, pos + size
    if code == 0x83:
        (ms,) = struct.unpack_from(">q", data, pos)
        return datetime.fromtimestamp(ms / 1000, UTC), pos + 8
    if code == 0x98:
        return uuid.UUID(bytes=bytes(data[pos : pos + 16])), pos + 16
    if code in (0xA0, 0xA1, 0xA3, 0xB0, 0xB1, 0xB3):
        if code < 0xB0:
            size, pos = data[pos], pos + 1
        else:
            (size,) = struct.unpack_from(">I", data, pos)
            pos += 4
        raw = bytes(data[pos : pos + size])
        pos += size
        return (raw if code in (0xA0, 0xB0) else raw.decode("utf-8", "replace")), pos
    if code in (0xC0, 0xC1, 0xD0, 0xD1):
        if code < 0xD0:
            count, pos = data[pos + 1], pos + 2
        else:
            (_, count) = struct.unpack_from(">II", data, pos)
            pos += 8
        items: list[object] = []
        for _ in range(count):
            item, pos = _value(data, pos)
            items.append(item)
        if code in (0xC1, 0xD1):
            return dict(zip(items[::2], items[1::2], strict=True)), pos
        return items, pos
    if code in (0xE0, 0xF0):
        if code == 0xE0:
            count, pos = data[pos + 1], pos + 2
        else:
            (_, count) = struct.unpack_from(">II", data, pos)
            pos += 8
        element = bytes([data[pos]])
        pos += 1
        values: list[object] = []
        for _ in range(count):
            # elements are written without their (shared) constructor: read each with it
            item, used = _value(element + bytes(data[pos:]), 0)
            values.append(item)
            pos += used - 1
        return values, pos
    raise ValueError(f"not an AMQP 1.0 value: constructor 0x{code:02x}")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def decode_message(data: bytes) -> AmqpMessage:
    """The sections of the AMQP 1.0 message ``data``. Raises ``ValueError`` if it is not
    one (a section that is not a described value)."""
    pos = 0
    end = len(data)
    body: list[bytes] = []
    properties: list[object] = []
    application: dict[str, str] = {}
    try:
        while pos < end:
            section, pos = _value(data, pos)
            if not isinstance(section, _Described):
                raise ValueError("not an AMQP 1.0 message: a section is not described")
            code = section.descriptor
            if isinstance(code, str):
                code = _SECTIONS.get(code)
            value = section.value
            if code == _DATA and isinstance(value, bytes):
                body.append(value)
            elif code == _AMQP_VALUE and isinstance(value, str | bytes):
                body.append(value.encode() if isinstance(value, str) else value)
            elif code == _PROPERTIES and isinstance(value, list):
                properties = value
            elif code == _APPLICATION_PROPERTIES and isinstance(value, dict):
                application = {_text(k): _text(v) for k, v in value.items() if v is not None}
    except (IndexError, struct.error) as exc:
        raise ValueError(f"not an AMQP 1.0 message: {exc}") from None
    fields = [*properties, *([None] * 13)]
    message_id, subject, created = fields[0], fields[3], fields[9]
    return AmqpMessage(
        body=b"".join(body),
        message_id=None if message_id is None else _text(message_id),
        subject=None if subject is None else _text(subject),
        creation_time=created if isinstance(created, datetime) else None,
        application_properties=application,
    )
