"""The outbox relay: moves stored outbox events to the event streamer."""

from __future__ import annotations

import time

from .._clock import Clock
from .._options import OutboxOptions
from .._protocols import EventSender, EventStreamer, OutgoingEvent, RecordStore
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
) -> None:
    """Relay until cancelled: list, send (grouped by topic, in order), then delete.

    Woken by the store when a write adds an outbox event; ``polling_frequency`` is only
    the fallback. Delivery is at least once: a crash between send and delete resends.
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
            for ev in events:
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
