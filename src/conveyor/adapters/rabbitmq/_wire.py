"""The RabbitMQ stream protocol's frames (the ``rabbitmq_stream`` plugin, port 5552), as
far as the adapters use them: encoding the client's requests and reading the server's.

A frame is ``size:u32 key:u16 version:u16 body``; a response's key is the request's
with the high bit set and its body starts with the request's correlation ID and a
response code. Strings are ``len:i16`` UTF-8, byte strings ``len:i32``, arrays and maps
``count:i32``; all integers big-endian. Only version 1 of each command is spoken.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CHUNK_HEADER",
    "Chunk",
    "Code",
    "Key",
    "Reader",
    "chunk_records",
    "close_frame",
    "describe",
    "read_chunk",
    "create_frame",
    "credit_frame",
    "declare_publisher_frame",
    "delete_frame",
    "delete_publisher_frame",
    "frame",
    "heartbeat_frame",
    "open_frame",
    "peer_properties_frame",
    "publish_frames",
    "query_offset_frame",
    "sasl_authenticate_frame",
    "sasl_handshake_frame",
    "store_offset_frame",
    "subscribe_frame",
    "tune_frame",
    "unsubscribe_frame",
]


class Key(enum.IntEnum):
    """Command keys (responses carry ``key | 0x8000``)."""

    DECLARE_PUBLISHER = 0x01
    PUBLISH = 0x02
    PUBLISH_CONFIRM = 0x03
    PUBLISH_ERROR = 0x04
    DELETE_PUBLISHER = 0x06
    SUBSCRIBE = 0x07
    DELIVER = 0x08
    CREDIT = 0x09
    STORE_OFFSET = 0x0A
    QUERY_OFFSET = 0x0B
    UNSUBSCRIBE = 0x0C
    CREATE = 0x0D
    DELETE = 0x0E
    METADATA_UPDATE = 0x10
    PEER_PROPERTIES = 0x11
    SASL_HANDSHAKE = 0x12
    SASL_AUTHENTICATE = 0x13
    TUNE = 0x14
    OPEN = 0x15
    CLOSE = 0x16
    HEARTBEAT = 0x17


RESPONSE: Final = 0x8000


class Code(enum.IntEnum):
    """Response codes the adapters tell apart (others are shown by number)."""

    OK = 0x01
    STREAM_DOES_NOT_EXIST = 0x02
    SUBSCRIPTION_ID_ALREADY_EXISTS = 0x03
    SUBSCRIPTION_ID_DOES_NOT_EXIST = 0x04
    STREAM_ALREADY_EXISTS = 0x05
    STREAM_NOT_AVAILABLE = 0x06
    SASL_MECHANISM_NOT_SUPPORTED = 0x07
    AUTHENTICATION_FAILURE = 0x08
    SASL_ERROR = 0x09
    SASL_CHALLENGE = 0x0A
    SASL_AUTHENTICATION_FAILURE_LOOPBACK = 0x0B
    VIRTUAL_HOST_ACCESS_FAILURE = 0x0C
    UNKNOWN_FRAME = 0x0D
    FRAME_TOO_LARGE = 0x0E
    INTERNAL_ERROR = 0x0F
    ACCESS_REFUSED = 0x10
    PRECONDITION_FAILED = 0x11
    PUBLISHER_DOES_NOT_EXIST = 0x12
    NO_OFFSET = 0x13


def describe(code: int) -> str:
    """A response code as its name (``STREAM_DOES_NOT_EXIST``) or number."""
    try:
        return Code(code).name
    except ValueError:
        return f"code {code}"


# --------------------------------------------------------------------------- encoding

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_HEAD = struct.Struct(">IHH")  # size, key, version
_MESSAGE = struct.Struct(">QI")  # publishing ID, length


def _string(value: str) -> bytes:
    raw = value.encode()
    if len(raw) > 32767:
        raise ValueError(f"string of {len(raw)} bytes is too long for the stream protocol")
    return _I16.pack(len(raw)) + raw


def _map(values: Mapping[str, str]) -> bytes:
    return _I32.pack(len(values)) + b"".join(
        _string(key) + _string(value) for key, value in values.items()
    )


def frame(key: int, body: bytes) -> bytes:
    """One frame: its size, ``key``, version 1, ``body``."""
    return _HEAD.pack(len(body) + 4, key, 1) + body


def peer_properties_frame(corr: int, properties: Mapping[str, str]) -> bytes:
    return frame(Key.PEER_PROPERTIES, _U32.pack(corr) + _map(properties))


def sasl_handshake_frame(corr: int) -> bytes:
    return frame(Key.SASL_HANDSHAKE, _U32.pack(corr))


def sasl_authenticate_frame(corr: int, mechanism: str, data: bytes) -> bytes:
    body = _U32.pack(corr) + _string(mechanism) + _I32.pack(len(data)) + data
    return frame(Key.SASL_AUTHENTICATE, body)


def tune_frame(frame_max: int, heartbeat: int) -> bytes:
    return frame(Key.TUNE, _U32.pack(frame_max) + _U32.pack(heartbeat))


def open_frame(corr: int, vhost: str) -> bytes:
    return frame(Key.OPEN, _U32.pack(corr) + _string(vhost))


def close_frame(corr: int, code: int, reason: str) -> bytes:
    return frame(Key.CLOSE, _U32.pack(corr) + _U16.pack(code) + _string(reason))


def heartbeat_frame() -> bytes:
    return frame(Key.HEARTBEAT, b"")


def create_frame(corr: int, stream: str, arguments: Mapping[str, str]) -> bytes:
    return frame(Key.CREATE, _U32.pack(corr) + _string(stream) + _map(arguments))


def delete_frame(corr: int, stream: str) -> bytes:
    return frame(Key.DELETE, _U32.pack(corr) + _string(stream))


def declare_publisher_frame(corr: int, publisher_id: int, stream: str) -> bytes:
    body = _U32.pack(corr) + _U8.pack(publisher_id) + _string("") + _string(stream)
    return frame(Key.DECLARE_PUBLISHER, body)


def delete_publisher_frame(corr: int, publisher_id: int) -> bytes:
    return frame(Key.DELETE_PUBLISHER, _U32.pack(corr) + _U8.pack(publisher_id))


def publish_frames(
    publisher_id: int, first_id: int, messages: Sequence[bytes], frame_max: int
) -> Iterator[tuple[bytes, int]]:
    """Publish frames of ``messages`` with publishing IDs from ``first_id`` on, each at most
    ``frame_max`` bytes: ``(frame, how many messages it holds)``. Raises ``ValueError`` for a
    message that does not fit in a frame of its own."""
    overhead = _HEAD.size + 1 + 4
    parts: list[bytes] = []
    size = overhead
    next_id = first_id
    for message in messages:
        entry = _MESSAGE.size + len(message)
        if overhead + entry > frame_max:
            raise ValueError(
                f"an event of {len(message)} bytes exceeds the server's frame size ({frame_max})"
            )
        if parts and size + entry > frame_max:
            yield _publish(publisher_id, parts), len(parts) // 2
            parts, size = [], overhead
        parts.append(_MESSAGE.pack(next_id, len(message)))
        parts.append(message)
        size += entry
        next_id += 1
    if parts:
        yield _publish(publisher_id, parts), len(parts) // 2


def _publish(publisher_id: int, parts: list[bytes]) -> bytes:
    body = b"".join((_U8.pack(publisher_id), _I32.pack(len(parts) // 2), *parts))
    return frame(Key.PUBLISH, body)


def subscribe_frame(
    corr: int, subscription_id: int, stream: str, offset: int | None, first: bool, credit: int
) -> bytes:
    """Subscribe from ``offset``, else from the stream's first event (``first``) or from
    the next one written (offset specification "next")."""
    by_offset = offset is not None
    spec = _U16.pack(4) + _U64.pack(offset or 0) if by_offset else _U16.pack(1 if first else 3)
    body = (
        _U32.pack(corr)
        + _U8.pack(subscription_id)
        + _string(stream)
        + spec
        + _U16.pack(credit)
        + _map({})
    )
    return frame(Key.SUBSCRIBE, body)


def credit_frame(subscription_id: int, credit: int) -> bytes:
    return frame(Key.CREDIT, _U8.pack(subscription_id) + _U16.pack(credit))


def unsubscribe_frame(corr: int, subscription_id: int) -> bytes:
    return frame(Key.UNSUBSCRIBE, _U32.pack(corr) + _U8.pack(subscription_id))


def store_offset_frame(reference: str, stream: str, offset: int) -> bytes:
    return frame(Key.STORE_OFFSET, _string(reference) + _string(stream) + _U64.pack(offset))


def query_offset_frame(corr: int, reference: str, stream: str) -> bytes:
    return frame(Key.QUERY_OFFSET, _U32.pack(corr) + _string(reference) + _string(stream))


# --------------------------------------------------------------------------- decoding


class Reader:
    """Reads one frame's body field by field."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self._data = data
        self._pos = pos

    @property
    def pos(self) -> int:
        return self._pos

    def u8(self) -> int:
        (value,) = _U8.unpack_from(self._data, self._pos)
        self._pos += 1
        return int(value)

    def u16(self) -> int:
        (value,) = _U16.unpack_from(self._data, self._pos)
        self._pos += 2
        return int(value)

    def u32(self) -> int:
        (value,) = _U32.unpack_from(self._data, self._pos)
        self._pos += 4
        return int(value)

    def i32(self) -> int:
        (value,) = _I32.unpack_from(self._data, self._pos)
        self._pos += 4
        return int(value)

    def u64(self) -> int:
        (value,) = _U64.unpack_from(self._data, self._pos)
        self._pos += 8
        return int(value)

    def string(self) -> str:
        (size,) = _I16.unpack_from(self._data, self._pos)
        self._pos += 2
        if size < 0:
            return ""
        raw = bytes(self._data[self._pos : self._pos + size])
        self._pos += size
        return raw.decode("utf-8", "replace")

    def strings(self) -> list[str]:
        return [self.string() for _ in range(self.i32())]

    def properties(self) -> dict[str, str]:
        count = self.i32()
        return {self.string(): self.string() for _ in range(count)}


CHUNK_HEADER: Final = struct.Struct(">bbHIqQQiIII")
"""magic and version, chunk type, entries, records, timestamp (ms), epoch, first offset,
CRC, data length, trailer length, reserved."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk of a stream delivered to a subscription."""

    subscription_id: int
    records: int
    timestamp_ms: int
    first_offset: int
    data: bytes


def read_chunk(body: memoryview) -> Chunk:
    """The ``Deliver`` frame's body (after key and version)."""
    subscription_id = body[0]
    (_, _, _, records, timestamp, _, first, _, length, _, _) = CHUNK_HEADER.unpack_from(body, 1)
    start = 1 + CHUNK_HEADER.size
    return Chunk(subscription_id, records, timestamp, first, bytes(body[start : start + length]))


def chunk_records(chunk: Chunk) -> Iterator[bytes | None]:
    """The chunk's records in offset order: each message's bytes, or ``None`` for a record
    this client cannot read (in a compressed sub-entry batch of another producer)."""
    data = chunk.data
    pos = 0
    end = len(data)
    produced = 0
    while pos < end and produced < chunk.records:
        head = data[pos]
        if head & 0x80 == 0:
            (size,) = _U32.unpack_from(data, pos)
            pos += 4
            yield data[pos : pos + size]
            pos += size
            produced += 1
            continue
        compression = (head & 0x70) >> 4
        (count,) = _U16.unpack_from(data, pos + 1)
        (length,) = _U32.unpack_from(data, pos + 7)
        batch = data[pos + 11 : pos + 11 + length]
        pos += 11 + length
        produced += count
        if compression != 0:
            yield from _compressed(compression, batch, count)
            continue
        inner = 0
        for _ in range(count):
            (size,) = _U32.unpack_from(batch, inner)
            inner += 4
            yield batch[inner : inner + size]
            inner += size


def _compressed(compression: int, batch: bytes, count: int) -> Iterator[bytes | None]:
    if compression == 1:  # gzip
        import zlib

        try:
            raw = zlib.decompress(batch, 16 + zlib.MAX_WBITS)
        except zlib.error:
            raw = None
        if raw is not None:
            inner = 0
            for _ in range(count):
                (size,) = _U32.unpack_from(raw, inner)
                inner += 4
                yield raw[inner : inner + size]
                inner += size
            return
    for _ in range(count):
        yield None
