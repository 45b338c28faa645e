"""``event_of``: the conveyor ``Event`` of a Kafka message the streamer wrote.

The value is the status in decimal and the headers the engine's (UTF-8); the key is the
foreign ID (the run ID). ``id`` is ``offset * partitions + partition``: unique per topic,
increasing within a partition. A value or header that does not decode gives type 0 and no
headers, as other adapters treat an event they cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from confluent_kafka import Message

from ..._event import Event
from ._reader import position

__all__ = ["event_of"]


def event_of(message: Message, partitions: int) -> Event:
    """The event of ``message`` from a topic of ``partitions`` partitions."""
    partition, offset = position(message)
    headers: Mapping[str, str]
    try:
        event_type = int(message.value() or b"")
        headers = _headers(message)
    except (ValueError, UnicodeDecodeError):
        event_type, headers = 0, {}
    key = message.key()
    _kind, stamp = message.timestamp()
    return Event(
        id=offset * partitions + partition,
        foreign_id=_text(key, "replace") if key else "",
        type=event_type,
        headers=headers,
        created_at=datetime.fromtimestamp(stamp / 1000, UTC),
    )


def _text(value: str | bytes | None, errors: str = "strict") -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode("utf-8", errors)


def _headers(message: Message) -> dict[str, str]:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {key: _text(value) for key, value in pairs}
