"""RabbitMQ stream protocol: the adapter's own client against the ``rstream`` library,
the same message pattern with each; prints one JSON line. Why the adapter has its own.

    python benchmarks/rabbitmq_clients.py [--messages 10000] [--publishers 16] [--rounds 5]
        [--host 127.0.0.1] [--port 5552] [--user guest] [--password guest]

Needs ``rstream`` (``pip install rstream``; not a dependency of conveyor). Each
measurement runs in a child process of its own (``--child conveyor|rstream``), and the
two clients alternate (which goes first swaps each round); the report gives each
figure's median over the rounds and the samples. Per client, ~200-byte messages, confirms
on:

- ``publish_confirmed_per_s``: ``--publishers`` concurrent publishers on one connection,
  each sending one message and awaiting its confirm before the next;
- ``publish_batch64_per_s``: batches of 64 written at once, then every confirm awaited;
- ``consume_store_per_s``: one consumer reading the confirmed phase's messages from the
  stream's start under an offset reference, storing its offset (the adapter: its
  receiver, acknowledging each event, the cursor stored once per loop turn; rstream: a
  subscription's callback, ``store_offset`` every 64 messages and at the end);
- ``p50_latency_ms`` / ``p99``: one message at a time, publish (confirm awaited) to
  delivery, 300 times, the consumer subscribed at ``next``;
- ``cpu_s_per_10k_*``: the child's own CPU (``resource.getrusage``, user + system) per
  10,000 messages of each phase (the node's CPU is not in it).

The adapter is used as its streamer uses it (``RabbitEventStreamer`` on a
``RabbitConnection``: a connection for publishing and one for reading). rstream: one
``Producer`` (``send_wait`` per publisher, ``send_batch`` with a confirm callback) and one
``Consumer``. Every stream made is deleted at the end of its child.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

PAYLOAD = (
    b'["run-0123456789",1,{"topic":"bench-1","run_id":"0123456789abcdef",'
    + b'"x":"'
    + (b"y" * 100)
    + b'"}]'
)
LATENCY_SAMPLES = 300


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Phase:
    """Wall and CPU time of one phase of ``count`` messages, into ``figures``."""

    def __init__(self, figures: dict[str, Any], name: str, rate_key: str | None) -> None:
        self.figures = figures
        self.name = name
        self.rate_key = rate_key

    def __enter__(self) -> _Phase:
        self.wall = time.perf_counter()
        self.cpu = _cpu()
        return self

    def done(self, count: int) -> None:
        wall = time.perf_counter() - self.wall
        cpu = _cpu() - self.cpu
        if self.rate_key is not None:
            self.figures[self.rate_key] = round(count / wall) if wall > 0 else 0
        self.figures[f"cpu_s_per_10k_{self.name}"] = round(cpu / count * 10_000, 3)

    def __exit__(self, *_: object) -> None:
        pass


def _latency(figures: dict[str, Any], samples: list[float]) -> None:
    ordered = sorted(samples)
    figures["p50_latency_ms"] = round(statistics.median(ordered) * 1000, 2)
    figures["p99_latency_ms"] = round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2)


# --------------------------------------------------------------------------- the adapter


async def conveyor_client(args: argparse.Namespace) -> dict[str, Any]:
    from conveyor.abc import Event, OutgoingEvent
    from conveyor.adapters.rabbitmq import RabbitConnection, RabbitEventStreamer

    url = f"rabbitmq-stream://{args.user}:{args.password}@{args.host}:{args.port}/"
    prefix = f"rc{uuid.uuid4().hex[:8]}"
    connection = RabbitConnection(f"{url}?prefix={prefix}")
    streamer = RabbitEventStreamer(connection)
    figures: dict[str, Any] = {}
    try:
        event = OutgoingEvent("run-0123456789", 1, {"topic": "bench", "x": "y" * 100})
        senders = [await streamer.new_sender("confirmed") for _ in range(args.publishers)]
        each = args.messages // args.publishers

        async def publish(sender: Any) -> None:
            for _ in range(each):
                await sender.send_many([event])

        with _Phase(figures, "confirmed", "publish_confirmed_per_s") as phase:
            await asyncio.gather(*(publish(s) for s in senders))
            phase.done(each * args.publishers)

        sender = senders[0]
        batches = args.messages // 64
        with _Phase(figures, "batch64", "publish_batch64_per_s") as phase:
            await asyncio.gather(*(sender.send_many([event] * 64) for _ in range(batches)))
            phase.done(batches * 64)

        total = each * args.publishers
        with _Phase(figures, "consume", "consume_store_per_s") as phase:
            receiver = await streamer.new_receiver("confirmed", "reader")
            got = 0
            while got < total:
                batch = await receiver.recv(64)
                for e in batch:
                    await receiver.ack(e)
                got += len(batch)
            await receiver.close()
            phase.done(total)

        sender = await streamer.new_sender("latency")
        receiver = await streamer.new_receiver("latency", "reader", stream_from_latest=True)
        samples: list[float] = []
        with _Phase(figures, "latency", None) as phase:
            for _ in range(LATENCY_SAMPLES):
                start = time.perf_counter()
                await sender.send_many([event])
                received: list[Event] = list(await receiver.recv(1))
                samples.append(time.perf_counter() - start)
                await receiver.ack(received[0])
            phase.done(LATENCY_SAMPLES)
        _latency(figures, samples)
        await receiver.close()
    finally:
        made = connection.known_streams
        await streamer.close()
        await connection.close()
        cleaner = RabbitConnection(url)
        await cleaner.delete(made)
        await cleaner.close()
    return figures


# --------------------------------------------------------------------------- rstream


async def rstream_client(args: argparse.Namespace) -> dict[str, Any]:
    # not a dependency of conveyor (so mypy of a checkout without it must not need it)
    rstream: Any = importlib.import_module("rstream")
    Consumer, Producer = rstream.Consumer, rstream.Producer
    ConsumerOffsetSpecification, OffsetType = (
        rstream.ConsumerOffsetSpecification,
        rstream.OffsetType,
    )

    base = f"rs{uuid.uuid4().hex[:8]}"
    confirmed, latency = f"{base}.confirmed", f"{base}.latency"
    login: dict[str, Any] = {"username": args.user, "password": args.password}
    producer = Producer(args.host, args.port, **login)
    consumer = Consumer(args.host, args.port, **login)
    await producer.start()
    await consumer.start()
    figures: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    try:
        for name in (confirmed, latency):
            await producer.create_stream(name, exists_ok=True)
        each = args.messages // args.publishers

        async def publish() -> None:
            for _ in range(each):
                await producer.send_wait(confirmed, PAYLOAD)

        with _Phase(figures, "confirmed", "publish_confirmed_per_s") as phase:
            await asyncio.gather(*(publish() for _ in range(args.publishers)))
            phase.done(each * args.publishers)

        batches = args.messages // 64

        async def batch() -> None:
            done: asyncio.Future[None] = loop.create_future()
            left = 64

            def confirm(status: Any) -> None:
                nonlocal left
                if not status.is_confirmed and not done.done():
                    done.set_exception(RuntimeError(f"refused: {status.response_code}"))
                left -= 1
                if left == 0 and not done.done():
                    done.set_result(None)

            await producer.send_batch(confirmed, [PAYLOAD] * 64, on_publish_confirm=confirm)
            await done

        with _Phase(figures, "batch64", "publish_batch64_per_s") as phase:
            await asyncio.gather(*(batch() for _ in range(batches)))
            phase.done(batches * 64)

        total = each * args.publishers
        with _Phase(figures, "consume", "consume_store_per_s") as phase:
            finished: asyncio.Future[None] = loop.create_future()
            got = 0

            async def on_message(message: Any, context: Any) -> None:
                nonlocal got
                got += 1
                if got % 64 == 0 or got == total:
                    await context.consumer.store_offset(confirmed, "reader", context.offset)
                if got == total and not finished.done():
                    finished.set_result(None)

            reading = await consumer.subscribe(
                confirmed,
                on_message,
                offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST, None),
                subscriber_name="reader",
            )
            await asyncio.wait_for(finished, 300)
            await consumer.unsubscribe(reading)
            phase.done(total)

        arrived: asyncio.Queue[float] = asyncio.Queue()

        async def on_latency(message: Any, context: Any) -> None:
            arrived.put_nowait(time.perf_counter())

        await consumer.subscribe(
            latency,
            on_latency,
            offset_specification=ConsumerOffsetSpecification(OffsetType.NEXT, None),
            subscriber_name="latency-reader",
        )
        samples: list[float] = []
        with _Phase(figures, "latency", None) as phase:
            for _ in range(LATENCY_SAMPLES):
                start = time.perf_counter()
                await producer.send_wait(latency, PAYLOAD)
                samples.append(await asyncio.wait_for(arrived.get(), 10) - start)
            phase.done(LATENCY_SAMPLES)
        _latency(figures, samples)
    finally:
        await consumer.close()
        for name in (confirmed, latency):
            await producer.delete_stream(name, missing_ok=True)
        await producer.close()
    return figures


# --------------------------------------------------------------------------- rounds

CLIENTS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]] = {
    "conveyor": conveyor_client,
    "rstream": rstream_client,
}


def _child(client: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", client]
    for option in ("messages", "publishers", "host", "port", "user", "password"):
        command += [f"--{option}", str(getattr(args, option))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5552)
    parser.add_argument("--user", default="guest")
    parser.add_argument("--password", default="guest")
    parser.add_argument("--child", choices=sorted(CLIENTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(CLIENTS[args.child](args))))
        return
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in CLIENTS}
    order = list(CLIENTS)
    for _ in range(args.rounds):
        for name in order:
            samples[name].append(_child(name, args))
        order.reverse()
    report: dict[str, Any] = {
        "benchmark": "rabbitmq_clients",
        "messages": args.messages,
        "publishers": args.publishers,
        "rounds": args.rounds,
    }
    for name, runs in samples.items():
        good = [run for run in runs if "error" not in run]
        keys = sorted({key for run in good for key in run})
        report[name] = {
            "median": {key: statistics.median(run[key] for run in good) for key in keys},
            "samples": runs,
        }
    report["python"] = sys.version.split()[0]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
