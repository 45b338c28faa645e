"""Connectors: outside event streams that start or move runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from ._capabilities import ReportsPending
from ._clock import Clock
from ._event import Event
from ._kit._hash import fnv1a64

__all__ = [
    "ConnectorConstructor",
    "ConnectorConsumer",
    "ConnectorEvent",
    "ConnectorReceiver",
    "fnv1a64",
]


@dataclass(frozen=True, slots=True)
class ConnectorEvent:
    """An event from an outside stream, as a connector hands it to the workflow."""

    id: str
    foreign_id: str
    type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@runtime_checkable
class ConnectorConsumer(Protocol):
    """Reads an outside stream from a cursor kept under the consumer's name."""

    async def recv(self, max_events: int = 1) -> Sequence[ConnectorEvent]:
        """Wait for at least one event; return up to ``max_events`` (cancellable)."""
        ...

    async def ack(self, event: ConnectorEvent) -> None:
        """Acknowledge an event; the cursor advances over unbroken runs of acks."""
        ...

    async def close(self) -> None:
        """Stop reading. Idempotent."""
        ...


@runtime_checkable
class ConnectorConstructor(Protocol):
    """Makes a consumer for one shard; ``name`` is its role (the cursor identity).

    Its owner (who built the workflow on it) closes it, after the workflow has stopped.
    """

    async def make(self, name: str) -> ConnectorConsumer:
        """A consumer reading from the cursor stored under ``name``."""
        ...

    async def close(self) -> None:
        """Release what the constructor holds (clients, connections). Idempotent."""
        ...


class ConnectorReceiver:
    """Presents a connector consumer as an event receiver, so the engine's consume loop
    (shards, lag, metrics, acks) applies. The event ID is ``fnv1a64(connector_event.id)``."""

    def __init__(self, consumer: ConnectorConsumer, clock: Clock) -> None:
        self._consumer = consumer
        self._clock = clock
        self._pending: dict[int, ConnectorEvent] = {}

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        events = []
        for ce in await self._consumer.recv(max_events):
            event = Event(
                id=fnv1a64(ce.id),
                foreign_id=ce.foreign_id,
                type=0,
                headers=ce.headers,
                created_at=ce.created_at or self._clock.now(),
            )
            self._pending[id(event)] = ce
            events.append(event)
        return events

    def pending(self) -> int:
        """Events not yet handed out, if the consumer can tell (``ReportsPending``); else
        1 ("unknown": a workflow with such a connector never reports idle)."""
        consumer = self._consumer
        return consumer.pending() if isinstance(consumer, ReportsPending) else 1

    def connector_event(self, event: Event) -> ConnectorEvent:
        return self._pending[id(event)]

    async def ack(self, event: Event) -> None:
        ce = self._pending.pop(id(event))
        await self._consumer.ack(ce)

    async def close(self) -> None:
        self._pending.clear()
        await self._consumer.close()
