"""``RedisStreamConnector``: an outside Redis stream as a connector (``ConnectorConstructor``).

The stream is anyone's (written with ``XADD``, auto IDs or explicit ones); the connector
only reads it, with plain ``XREAD`` (no consumer group, nothing written to the stream).
Each entry becomes a ``ConnectorEvent``:

- ``id``: the entry's ``id`` field, else the entry ID (``1700000000000-0``);
- ``foreign_id``: the ``foreign_id`` field (empty if absent);
- ``type``: the ``type`` field (empty if absent);
- ``headers``: the ``headers`` field as a JSON object of strings, merged over every other
  field of the entry (``{field: value}``, text as UTF-8); a ``headers`` field that is not
  such an object is kept as a plain header;
- ``created_at``: the milliseconds part of the entry ID, when it is a plausible time
  (after 2000-01-01: what auto IDs are); else ``None`` (the workflow's clock is used).

The field names are keyword options (``id_field`` and so on). Cursors: a consumer's
cursor is the ID of the last entry of the unbroken run of acknowledged entries, kept in
``<prefix>:cursor:{<stream>}:<name>`` (written at each ack that moves it), so a consumer
made again under the same name starts after it: an unacknowledged entry, and every entry
after it, comes again; a new name reads the stream from its start.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..._connector import ConnectorEvent
from ..._errors import AdapterError
from ._client import BlockingConnection, RedisClient

__all__ = ["RedisStreamConnector", "RedisStreamConsumer"]

_EPOCH_2000_MS = 946_684_800_000


class RedisStreamConnector:
    """Makes consumers of the outside stream ``stream`` (module docstring).

    ``client`` is shared (closing the connector does not close it) unless ``owns_client``.
    """

    def __init__(
        self,
        client: RedisClient,
        stream: str,
        *,
        id_field: str = "id",
        foreign_id_field: str = "foreign_id",
        type_field: str = "type",
        headers_field: str = "headers",
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self.stream: str = stream
        self.fields: tuple[str, str, str, str] = (
            id_field,
            foreign_id_field,
            type_field,
            headers_field,
        )
        self._owns_client = owns_client
        self._consumers: set[RedisStreamConsumer] = set()
        self._closed = False

    async def make(self, name: str) -> RedisStreamConsumer:
        """A consumer reading after the cursor stored under ``name``."""
        if self._closed:
            raise AdapterError("connector is closed")
        key = self._client.options.keys.cursor(self.stream, name)
        cursor = await self._client.command(
            f"reading the cursor {name!r} of stream {self.stream!r}", "GET", key
        )
        consumer = RedisStreamConsumer(self, name, key, _text(cursor) if cursor else "0-0")
        self._consumers.add(consumer)
        return consumer

    async def close(self) -> None:
        """Close every consumer made. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.close()
        if self._owns_client:
            await self._client.close()

    def _event(self, entry_id: str, fields: Mapping[bytes, bytes]) -> ConnectorEvent:
        id_field, fid_field, type_field, headers_field = self.fields
        text = {_text(k): _text(v) for k, v in fields.items()}
        headers: dict[str, str] = {
            k: v for k, v in text.items() if k not in (id_field, fid_field, type_field)
        }
        raw_headers = headers.pop(headers_field, None)
        if raw_headers is not None:
            decoded = _json_headers(raw_headers)
            if decoded is None:
                headers[headers_field] = raw_headers
            else:
                headers.update(decoded)
        return ConnectorEvent(
            id=text.get(id_field, entry_id),
            foreign_id=text.get(fid_field, ""),
            type=text.get(type_field, ""),
            headers=headers,
            created_at=_created_at(entry_id),
        )


class RedisStreamConsumer:
    """Reads the stream after its cursor (``ConnectorConsumer``)."""

    def __init__(self, connector: RedisStreamConnector, name: str, key: str, cursor: str) -> None:
        self._connector = connector
        self._client: RedisClient = connector._client
        self.name: str = name
        self._key = key
        self._position = cursor  # the last entry read
        self._conn: BlockingConnection = self._client.blocking()
        self._order: collections.deque[str] = collections.deque()  # handed out, in order
        self._acked: set[str] = set()
        self._entry_of: dict[int, tuple[str, ConnectorEvent]] = {}
        self._caught_up = False  # a read found nothing after the cursor
        self._closed = False

    def pending(self) -> int:
        """A hint (``ReportsPending``): entries handed out and not acknowledged, and one
        more until a read has found nothing after the cursor (so a workflow is idle only
        once its connector has read the stream to its end)."""
        if self._closed:
            return 0
        return len(self._order) + (0 if self._caught_up else 1)

    async def recv(self, max_events: int = 1) -> Sequence[ConnectorEvent]:
        """Wait for at least one entry; return up to ``max_events`` (cancellable).

        The first read after entries were found does not block, so that finding nothing
        marks the consumer caught up (``pending``) before it waits."""
        connector = self._connector
        while True:
            if self._closed:
                raise AdapterError("connector consumer is closed")
            block = ("BLOCK", round(self._conn.block * 1000)) if self._caught_up else ()
            reply = await self._conn.command(
                f"reading stream {connector.stream!r}",
                "XREAD",
                "COUNT",
                max(1, max_events),
                *block,
                "STREAMS",
                connector.stream,
                self._position,
            )
            entries: list[Any] = [e for _, found in reply or () for e in found]
            if not entries:
                self._caught_up = True
                continue
            self._caught_up = False
            events: list[ConnectorEvent] = []
            for raw_id, fields in entries:
                entry_id = _text(raw_id)
                event = connector._event(entry_id, fields or {})
                self._entry_of[id(event)] = (entry_id, event)
                self._order.append(entry_id)
                events.append(event)
            self._position = _text(entries[-1][0])
            return events

    async def ack(self, event: ConnectorEvent) -> None:
        """Acknowledge an event; the cursor moves over the unbroken run of acks."""
        found = self._entry_of.pop(id(event), None)
        if found is None:
            return
        self._acked.add(found[0])
        cursor = None
        while self._order and self._order[0] in self._acked:
            cursor = self._order.popleft()
            self._acked.discard(cursor)
        if cursor is not None:
            await self._client.command(f"moving the cursor {self.name!r}", "SET", self._key, cursor)

    async def close(self) -> None:
        """Stop reading. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._connector._consumers.discard(self)
        self._entry_of.clear()
        await self._conn.close()


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _json_headers(raw: str) -> dict[str, str] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(k): v for k, v in value.items()}
    return None


def _created_at(entry_id: str) -> datetime | None:
    try:
        ms = int(entry_id.partition("-")[0])
    except ValueError:
        return None
    if ms < _EPOCH_2000_MS or ms > 2**47:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)
