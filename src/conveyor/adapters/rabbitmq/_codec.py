"""An event as a stream message: the payload carries foreign ID, type and headers.

Compact JSON ``[foreign_id, type, {headers}]`` (conveyor's headers are an open string
map). The event's ID is the message's offset in its topic's stream and ``created_at`` its
chunk's timestamp (the node's clock, milliseconds). A payload that does not decode is
handed out as an event with no foreign ID, type 0 and empty headers (consumers skip it),
never raised.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from ..._event import Event
from ..._protocols import OutgoingEvent

__all__ = ["decode", "encode"]


class _Wire(msgspec.Struct, array_like=True):
    foreign_id: str
    type: int
    headers: dict[str, str]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Wire)


def encode(event: OutgoingEvent) -> bytes:
    return _encoder.encode(_Wire(event.foreign_id, int(event.type), dict(event.headers)))


def decode(data: bytes | None, offset: int, created_at: datetime) -> Event:
    if data is not None:
        try:
            wire = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            return Event(offset, wire.foreign_id, wire.type, wire.headers, created_at)
    return Event(offset, "", 0, {}, created_at)
