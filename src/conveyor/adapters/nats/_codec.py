"""An event as a JetStream message: the payload carries foreign ID, type and headers.

Conveyor's headers are an open string map, and NATS header names are restricted, so they
travel in the payload, compact JSON ``[foreign_id, type, {headers}]``. The event's ID is
the message's stream sequence and ``created_at`` its stream timestamp (the server's
clock). A payload that does not decode is handed out as an event with no foreign ID,
type 0 and empty headers (consumers skip it), never raised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec
from nats.aio.msg import Msg

from ..._event import Event, Header
from ..._protocols import OutgoingEvent

__all__ = ["EXPECTED_STREAM", "MSG_ID", "decode", "encode", "message_id", "position"]

MSG_ID = "Nats-Msg-Id"
EXPECTED_STREAM = "Nats-Expected-Stream"
"""The stream a publish must land in (the server refuses it otherwise)."""


class _Wire(msgspec.Struct, array_like=True):
    foreign_id: str
    type: int
    headers: dict[str, str]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Wire)


def encode(event: OutgoingEvent) -> bytes:
    return _encoder.encode(_Wire(event.foreign_id, int(event.type), dict(event.headers)))


def message_id(headers: Mapping[str, str]) -> str | None:
    """The ``Nats-Msg-Id`` of an engine event (one per record write), else ``None``: a copy
    sent again within the stream's duplicate window is dropped by the server."""
    run_id = headers.get(Header.RUN_ID)
    version = headers.get(Header.RECORD_VERSION)
    if run_id is None or version is None:
        return None
    return hashlib.blake2b(f"{run_id}\0{version}".encode(), digest_size=16).hexdigest()


def position(msg: Msg) -> tuple[int, int, int, datetime]:
    """Stream sequence, delivery count, consumer's pending count and stored time, from the
    message's reply subject: ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.
    <consumer seq>.<nanoseconds>.<pending>``, or (newer servers) the same after a domain
    and an account hash, perhaps with a random token at the end; the fields nats-py's
    ``Msg.metadata`` reads, without building its dataclasses. Raises ``ValueError`` if
    it is not a JetStream message."""
    tokens = (msg.reply or "").split(".")
    count = len(tokens)
    if tokens[0] != "$JS" or count < 9 or tokens[1] != "ACK":
        raise ValueError(f"not a JetStream message: {msg.reply!r}")
    if count == 9:
        at = 4
    elif count >= 11:
        at = 6
    else:
        raise ValueError(f"not a JetStream message: {msg.reply!r}")
    stored = datetime.fromtimestamp(int(tokens[at + 3]) / 1_000_000_000.0, UTC)
    return int(tokens[at + 1]), int(tokens[at]), int(tokens[at + 4]), stored


def decode(msg: Msg, seq: int, stored: datetime) -> Event:
    created_at = stored if stored.tzinfo is not None else stored.replace(tzinfo=UTC)
    try:
        wire = _decoder.decode(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return Event(seq, "", 0, {}, created_at)
    return Event(seq, wire.foreign_id, wire.type, wire.headers, created_at)
