"""The outbox relay: moves stored outbox events to the event streamer."""

from __future__ import annotations

import time
from collections.abc import Callable

from .._clock import Clock
from .._errors import DecodeError, RecordNotFound
from .._event import Header, OutboxEvent
from .._options import OutboxOptions
from .._protocols import EventSender, EventStreamer, Logger, OutgoingEvent, RecordStore
from .._record import Record
from .._supervisor import ProcessContext

__all__ = ["relay_outbox"]


async def relay_outbox(
    ctx: ProcessContext,
    *,
    store: RecordStore,
    streamer: EventStreamer,
    clock: Clock,
    workflow_name: str,
    options: OutboxOptions,
    rebuild: Callable[[Record], OutboxEvent],
    logger: Logger,
) -> None:
    """Relay until cancelled: list, send (grouped by topic, in order), then delete.

    Woken by the store when a write adds an outbox event; ``polling_frequency`` is only
    the fallback. Delivery is at least once: a crash between send and delete resends.
    An outbox row whose headers no longer decode (listed with none) is sent as
    ``rebuild`` makes it from the run's record, or dropped (logged) if there is none.
    """
    senders: dict[str, EventSender] = {}
    try:
        while not ctx.draining:
            events = await store.list_outbox_events(workflow_name, options.lookup_limit)
            if not events:
                ctx.busy = False
                await store.wait_for_outbox(workflow_name, options.polling_frequency)
                continue
            ctx.busy = True
            metrics = ctx.metrics
            started = 0.0
            if metrics is not None:
                age = (clock.now() - events[0].created_at).total_seconds()
                metrics.observe_lag(max(0.0, age), options.lag_alert)
                started = time.perf_counter()
            by_topic: dict[str, list[OutgoingEvent]] = {}
            for listed in events:
                ev = listed if listed.headers else await _repaired(store, listed, rebuild, logger)
                if ev is None:
                    continue
                items = by_topic.get(ev.topic)
                if items is None:
                    items = by_topic[ev.topic] = []
                items.append(OutgoingEvent(ev.run_id, ev.type, ev.headers))
            for topic, items in by_topic.items():
                sender = senders.get(topic)
                if sender is None:
                    sender = senders[topic] = await streamer.new_sender(topic)
                await sender.send_many(items)
            await store.delete_outbox_events([ev.id for ev in events])
            if metrics is not None:
                per_event = (time.perf_counter() - started) / len(events)
                for _ in events:
                    metrics.latency.observe(per_event)
            ctx.progress()
    finally:
        ctx.busy = False
        for sender in senders.values():
            await sender.close()


async def _repaired(
    store: RecordStore,
    broken: OutboxEvent,
    rebuild: Callable[[Record], OutboxEvent],
    logger: Logger,
) -> OutboxEvent | None:
    """The event for a run whose outbox row lost its headers, made again from the record."""
    try:
        record = await store.lookup(broken.run_id)
    except (RecordNotFound, DecodeError) as exc:
        logger.error(
            "an outbox row's headers do not decode and its run cannot be read: dropping it",
            None,
            workflow=broken.workflow_name,
            run_id=broken.run_id,
            outbox_id=broken.id,
            error=str(exc),
        )
        return None
    event = rebuild(record)
    logger.error(
        "an outbox row's headers do not decode: sending the run's current event instead",
        None,
        workflow=broken.workflow_name,
        run_id=broken.run_id,
        outbox_id=broken.id,
        topic=event.headers.get(Header.TOPIC, ""),
    )
    return event
