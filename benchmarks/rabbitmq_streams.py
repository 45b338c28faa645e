"""RabbitMQ: streams over the stream protocol against streams and quorum queues over AMQP
0.9.1, measured the same way; prints one JSON line. Why the adapter is what it is.

    python benchmarks/rabbitmq_streams.py [--messages 20000] [--publishers 16]
        [--stream-url rabbitmq-stream://guest:guest@127.0.0.1:5552/]
        [--amqp-url amqp://guest:guest@127.0.0.1:5672/]

For each transport, with publisher confirms on and ~200-byte messages:

- ``publish_confirmed_per_s``: ``--publishers`` concurrent publishers, each sending one
  message and waiting for its confirm before the next (what many relays in many
  processes do);
- ``publish_batch64_per_s``: batches of 64 written at once, then every confirm awaited
  (what one outbox relay does);
- ``consume_ack_per_s``: one consumer reading all of them from the start, acknowledging
  each (AMQP ``basic.ack``; the stream protocol: the adapter's cursor, stored once per
  turn of the loop);
- ``p50_latency_ms`` / ``p99``: one message at a time, publish to delivery, 300 times.

``stream-protocol`` is the adapter (``RabbitEventStreamer``: a connection for publishing
and one for reading). ``stream-protocol-one-connection`` publishes and reads on one
connection (what the adapter avoids: the node sends a connection's confirms after the
chunks it delivers to it). ``amqp-stream-queue`` and ``amqp-quorum-queue`` use aiormq
(``pip install aiormq``; left out, with the reason, without it). A quorum queue per
receiver name would also need every event published to every receiver's queue (a
fanout exchange) and would hold nothing sent before the queue existed: the streamer
contract's "a new receiver name reads every retained event" fails for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from conveyor.abc import Event, OutgoingEvent
from conveyor.adapters.rabbitmq import RabbitConnection, RabbitEventStreamer

PAYLOAD = (
    b'["run-0123456789",1,{"topic":"bench-1","run_id":"0123456789abcdef",'
    + b'"x":"'
    + (b"y" * 100)
    + b'"}]'
)


def _rates(count: int, seconds: float) -> float:
    return round(count / seconds) if seconds > 0 else 0.0


def _latency(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_latency_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_latency_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
    }


# --------------------------------------------------------------------------- stream protocol


async def stream_protocol(url: str, messages: int, publishers: int, shared: bool) -> dict[str, Any]:
    prefix = f"rb{uuid.uuid4().hex[:8]}"
    connection = RabbitConnection(f"{url}{'&' if '?' in url else '?'}prefix={prefix}")
    streamer = RabbitEventStreamer(connection)
    if shared:  # publishing and reading on one connection: the main client for all
        reading = connection.client

        async def same(*, publishing: bool = False, lane: int | None = None) -> Any:
            return await reading()

        connection.client = same  # type: ignore[method-assign]
    figures: dict[str, Any] = {}
    try:
        event = OutgoingEvent("run-0123456789", 1, {"topic": "bench", "x": "y" * 100})
        topic = "confirmed"
        senders = [await streamer.new_sender(topic) for _ in range(publishers)]
        each = messages // publishers

        async def publish(sender: Any) -> None:
            for _ in range(each):
                await sender.send_many([event])

        start = time.perf_counter()
        await asyncio.gather(*(publish(s) for s in senders))
        figures["publish_confirmed_per_s"] = _rates(each * publishers, time.perf_counter() - start)

        sender = senders[0]
        start = time.perf_counter()
        await asyncio.gather(*(sender.send_many([event] * 64) for _ in range(messages // 64)))
        figures["publish_batch64_per_s"] = _rates(messages // 64 * 64, time.perf_counter() - start)

        receiver = await streamer.new_receiver(topic, "reader")
        total = each * publishers
        got = 0
        start = time.perf_counter()
        while got < total:
            batch = await receiver.recv(64)
            for e in batch:
                await receiver.ack(e)
            got += len(batch)
        figures["consume_ack_per_s"] = _rates(total, time.perf_counter() - start)
        await receiver.close()

        latency_topic = "latency"
        sender = await streamer.new_sender(latency_topic)
        receiver = await streamer.new_receiver(latency_topic, "reader", stream_from_latest=True)
        samples: list[float] = []
        for _ in range(300):
            start = time.perf_counter()
            await sender.send_many([event])
            received: list[Event] = list(await receiver.recv(1))
            samples.append(time.perf_counter() - start)
            await receiver.ack(received[0])
        figures.update(_latency(samples))
    finally:
        made = connection.known_streams
        await streamer.close()
        await connection.close()
        cleaner = RabbitConnection(url)
        await cleaner.delete(made)
        await cleaner.close()
    return figures


# --------------------------------------------------------------------------- AMQP 0.9.1


async def amqp(url: str, messages: int, publishers: int, queue_type: str) -> dict[str, Any]:
    import aiormq

    figures: dict[str, Any] = {}
    queue = f"rb-{queue_type}-{uuid.uuid4().hex[:8]}"
    latency_queue = f"{queue}-latency"
    conn = await aiormq.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        for name in (queue, latency_queue):
            await channel.queue_declare(name, durable=True, arguments={"x-queue-type": queue_type})
        channels = [await conn.channel(publisher_confirms=True) for _ in range(publishers)]
        each = messages // publishers

        async def publish(ch: Any) -> None:
            for _ in range(each):
                await ch.basic_publish(PAYLOAD, routing_key=queue)

        start = time.perf_counter()
        await asyncio.gather(*(publish(ch) for ch in channels))
        figures["publish_confirmed_per_s"] = _rates(each * publishers, time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(messages // 64):
            await asyncio.gather(
                *(channel.basic_publish(PAYLOAD, routing_key=queue) for _ in range(64))
            )
        figures["publish_batch64_per_s"] = _rates(messages // 64 * 64, time.perf_counter() - start)

        total = each * publishers + messages // 64 * 64
        consumer = await conn.channel()
        await consumer.basic_qos(prefetch_count=500)
        done = asyncio.get_running_loop().create_future()
        got = 0

        async def on_message(message: Any) -> None:
            nonlocal got
            await message.channel.basic_ack(message.delivery.delivery_tag)
            got += 1
            if got == total and not done.done():
                done.set_result(None)

        arguments: Any = {"x-stream-offset": "first"} if queue_type == "stream" else None
        start = time.perf_counter()
        await consumer.basic_consume(queue, on_message, arguments=arguments)
        await asyncio.wait_for(done, 300)
        figures["consume_ack_per_s"] = _rates(total, time.perf_counter() - start)

        arrived: asyncio.Queue[float] = asyncio.Queue()

        async def on_latency(message: Any) -> None:
            await message.channel.basic_ack(message.delivery.delivery_tag)
            arrived.put_nowait(time.perf_counter())

        reader = await conn.channel()
        await reader.basic_qos(prefetch_count=10)
        latest: Any = {"x-stream-offset": "next"} if queue_type == "stream" else None
        await reader.basic_consume(latency_queue, on_latency, arguments=latest)
        await asyncio.sleep(0.2)  # a stream consumer at "next" attaches asynchronously
        samples: list[float] = []
        for _ in range(300):
            start = time.perf_counter()
            await channel.basic_publish(PAYLOAD, routing_key=latency_queue)
            samples.append(await asyncio.wait_for(arrived.get(), 10) - start)
        figures.update(_latency(samples))
        for name in (queue, latency_queue):
            await channel.queue_delete(name)
    finally:
        await conn.close()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--stream-url", default="rabbitmq-stream://guest:guest@127.0.0.1:5552/")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    setups: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "stream-protocol": lambda: stream_protocol(
            args.stream_url, args.messages, args.publishers, shared=False
        ),
        "stream-protocol-one-connection": lambda: stream_protocol(
            args.stream_url, args.messages, args.publishers, shared=True
        ),
        "amqp-stream-queue": lambda: amqp(args.amqp_url, args.messages, args.publishers, "stream"),
        "amqp-quorum-queue": lambda: amqp(args.amqp_url, args.messages, args.publishers, "quorum"),
    }
    report: dict[str, Any] = {"benchmark": "rabbitmq_streams", "messages": args.messages}
    for name, run in setups.items():
        try:
            report[name] = await run()
        except ImportError as exc:
            report[name] = {"skipped": f"{exc} (pip install aiormq)"}
    report["python"] = sys.version.split()[0]
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
