"""An event as a stream message: the payload carries foreign ID, type and headers.

Compact JSON ``[foreign_id, type, {headers}, origin, seq]`` (conveyor's headers are an
open string map). ``origin`` is a token of the streamer that sent it and ``seq`` its
count of events sent to the topic, so receivers in the same process tell how many of that
streamer's events they have not seen yet (``pending``); other writers may leave both out.
The event's ID is the message's offset in its topic's stream and ``created_at`` its
chunk's timestamp (the node's clock, milliseconds). A payload that does not decode is
handed out as an event with no foreign ID, type 0 and empty headers (consumers skip it),
never raised.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import msgspec

from ..._event import Event
from ..._protocols import OutgoingEvent

__all__ = ["Decoded", "decode", "encode"]


class _Wire(msgspec.Struct, array_like=True):
    foreign_id: str
    type: int
    headers: dict[str, str]
    origin: str = ""
    seq: int = 0


class Decoded(NamedTuple):
    """A message's event, and who sent it: the sending streamer's token and count."""

    event: Event
    origin: str
    seq: int


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Wire)


def encode(event: OutgoingEvent, origin: str, seq: int) -> bytes:
    wire = _Wire(event.foreign_id, int(event.type), dict(event.headers), origin, seq)
    return _encoder.encode(wire)


def decode(data: bytes | None, offset: int, created_at: datetime) -> Decoded:
    if data is not None:
        try:
            wire = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            event = Event(offset, wire.foreign_id, wire.type, wire.headers, created_at)
            return Decoded(event, wire.origin, wire.seq)
    return Decoded(Event(offset, "", 0, {}, created_at), "", 0)
