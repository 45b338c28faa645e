"""Which Kafka client for conveyor's Kafka adapter: confluent-kafka, driven as the adapter
drives it, or aiokafka. Prints one JSON line.

    python benchmarks/kafka_drivers.py [--messages 20000] [--drain-messages 50000]
        [--rounds 5] [--producers 16] [--batch 1] [--max-events 64]
        [--commit-interval 0.005] [--fetch-wait 0.05] [--idle-consumers 6]
        [--idle-seconds 10] [--drivers confluent,aiokafka]

Starts a librdkafka mock cluster (``tests/adapters/_kafka_mock.py``: three brokers on
loopback, no disk, no replication) and, per round and per driver (the order alternating
from round to round), runs each measurement in a fresh child process of this script on a
fresh topic of 3 partitions, so that one driver's threads and sockets never cost the
other's figures:

- **flow**: ``--producers`` tasks, each sending ``--batch`` messages (key: one of 1,000
  run IDs; value: 100 bytes starting with its send time; three headers) and awaiting every
  delivery report before its next send (what the outbox relay does), until
  ``--messages`` are sent; meanwhile one consumer with the 3 partitions assigned (no group
  membership; the group ID only keeps offsets) takes up to ``--max-events`` at a time,
  acknowledges each and commits what was acknowledged ``--commit-interval`` after the
  acknowledgement, one commit at a time (as ``PartitionReader`` does). A warm-up of 200
  messages goes through first; the clock starts after it. Figures: messages/s from the
  first send to the last receipt (``sent_per_s``: to the last delivery report);
  send-to-receipt latency p50/p99; CPU seconds (user + system) per 10,000 messages of
  the child process (``resource.getrusage``: all its threads) and of the mock cluster's
  process (``/proc/<pid>/stat``); the event loop's longest stall (a task sleeping 1 ms,
  recording how late it woke) and its p99.
- **send**: the same producers without a consumer (the producer's share of the flow).
- **drain**: a consumer opened on a topic already holding ``--drain-messages`` (written
  by one librdkafka producer, so many messages per record batch) reads them all, the
  clock and the CPU counted from before its ``open``: a receiver taking over a backlog.
  The mock keeps at most 5 MB per partition (older record batches are dropped), so keep
  the backlog below ~80,000 of these messages.
- **idle**: ``--idle-consumers`` consumers, each with the 3 partitions of an empty topic
  assigned and a receive pending, at the adapter's fetch wait (``--fetch-wait``, by
  default ``KafkaOptions.fetch_wait``); CPU seconds per 10 s of the child and of the
  mock. No loop-lag probe runs here (its own wake-ups would be most of the cost).

Two things of the mock shape the flow's consumer side: a fetch that finds no data is
answered only after the whole fetch wait, even when a message arrives meanwhile, and a
fetch returns at most one record batch per partition (``rdkafka_mock_handlers.c``: "FIXME:
Multiple messageSets ?"). Producers that each await one message's delivery write record
batches of one or a few messages, so a consumer gets that few per fetch round trip and
its rate is its round trips per second; a real broker returns every batch up to
``max.partition.fetch.bytes`` at once. ``drain`` and ``send`` show the per-message costs
without that limit.

``confluent`` is the adapter's own code: ``KafkaClient.produce`` (one producer, a thread
polling delivery reports, one ``call_soon_threadsafe`` per batch) and ``PartitionReader``
(``assign``, ``poll``/``consume`` on a thread of its own, commits on a second thread).
``aiokafka`` (``pip install aiokafka``; left out, with the reason, without it) does the
same on the event loop: ``AIOKafkaProducer.send`` (``acks=all``, idempotent, as the
adapter's producer) and ``AIOKafkaConsumer`` with ``assign``, ``seek`` to the low
watermark, ``getmany`` and ``commit``. Reported: per driver and measurement, the median
of the rounds, and each round's messages/s.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conveyor._kit._acks import AckTracker
from conveyor.adapters.kafka import KafkaOptions

HERE = Path(__file__).parent
PARTITIONS = 3
WARM_UP = 200
RUN_IDS = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(1000)]
VALUE_SIZE = 100

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]


# ------------------------------------------------------------------ measuring


def cpu_self() -> float:
    """CPU seconds (user + system) of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LagProbe:
    """A task sleeping 1 ms again and again, recording how late each wake-up was."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - before - 0.001)

    async def stop(self) -> dict[str, float]:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        lags = sorted(self.lags)
        return {
            "loop_lag_max_ms": round(lags[-1] * 1000, 1) if lags else 0.0,
            "loop_lag_p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 2) if lags else 0.0,
        }


def message(i: int) -> Message:
    """Message ``i``: keyed by a run ID, 100 bytes of value led by its send time."""
    sent = b"%020d" % time.monotonic_ns()
    value = sent + b"x" * (VALUE_SIZE - len(sent))
    run = RUN_IDS[i % len(RUN_IDS)]
    headers = [("event-id", b"%d" % i), ("run-id", run.encode()), ("topic", b"bench 1")]
    return run.encode(), value, headers


# ------------------------------------------------------------------ drivers


class Driver:
    """One producer and one consumer of ``topic`` (all partitions), or idle consumers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.options = KafkaOptions(
            fetch_wait=args.fetch_wait, commit_interval=args.commit_interval, linger=0.0
        )

    async def open(
        self, topic: str, group: str, *, sending: bool = True, receiving: bool = True
    ) -> None:
        """Connect, if ``sending``, a producer and, if ``receiving``, a consumer of
        ``topic`` (all partitions, from the start)."""
        raise NotImplementedError

    async def send(self, messages: Sequence[Message]) -> None:
        """Send ``messages``; return when every one of them has its delivery report."""
        raise NotImplementedError

    async def receive(self) -> list[bytes]:
        """The values of the next messages (at least one), each acknowledged."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def idle(self, topics: Sequence[str], seconds: float) -> None:
        """Hold a consumer per topic, all partitions assigned, a receive pending on each,
        for ``seconds``."""
        raise NotImplementedError


class Confluent(Driver):
    """The adapter's own ``KafkaClient`` and ``PartitionReader``."""

    async def open(
        self, topic: str, group: str, *, sending: bool = True, receiving: bool = True
    ) -> None:
        # the adapter's producer is made at the first send: nothing to skip
        from conveyor.adapters.kafka._client import KafkaClient
        from conveyor.adapters.kafka._reader import PartitionReader

        self.topic = topic
        self.client = KafkaClient(self.args.bootstrap, self.options)
        self.reader: PartitionReader | None = None
        if not receiving:
            return
        self.reader = PartitionReader(
            self.args.bootstrap,
            self.options,
            topic,
            group,
            range(PARTITIONS),
            self.client.ends,
        )
        await self.reader.open(from_latest=False)

    async def send(self, messages: Sequence[Message]) -> None:
        await self.client.produce(self.topic, messages, asyncio.get_running_loop())

    async def receive(self) -> list[bytes]:
        from conveyor.adapters.kafka._reader import position

        assert self.reader is not None
        values: list[bytes] = []
        for m in await self.reader.fetch(self.args.max_events):
            self.reader.ack(*position(m))
            value = m.value()
            assert isinstance(value, bytes)
            values.append(value)
        return values

    async def close(self) -> None:
        if self.reader is not None:
            await self.reader.close()
        await self.client.close()

    async def idle(self, topics: Sequence[str], seconds: float) -> None:
        from conveyor.adapters.kafka._reader import PartitionReader

        readers = [
            PartitionReader(self.args.bootstrap, self.options, t, f"idle-{t}", range(PARTITIONS))
            for t in topics
        ]
        await asyncio.gather(*(r.open(from_latest=False) for r in readers))
        waits = [asyncio.create_task(r.fetch(self.args.max_events)) for r in readers]
        await asyncio.sleep(0.5)  # fetches going, as for aiokafka
        await measured_sleep(self.args, seconds)
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        await asyncio.gather(*(r.close() for r in readers))


class AioKafka(Driver):
    """aiokafka on the event loop, doing what ``PartitionReader`` and ``KafkaClient`` do."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.lib: Any = importlib.import_module("aiokafka")  # no type hints: Any
        self.trackers: dict[int, AckTracker] = {}
        self.dirty: set[int] = set()
        self.flush: asyncio.TimerHandle | None = None
        self.committing: asyncio.Task[None] | None = None

    def consumer(self, group: str) -> Any:
        return self.lib.AIOKafkaConsumer(
            bootstrap_servers=self.args.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=int(self.options.fetch_wait * 1000),
            request_timeout_ms=int(self.options.request_timeout * 1000),
        )

    async def open(
        self, topic: str, group: str, *, sending: bool = True, receiving: bool = True
    ) -> None:
        self.topic = topic
        self.producer: Any = None
        if sending:
            self.producer = self.lib.AIOKafkaProducer(
                bootstrap_servers=self.args.bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=0,
                request_timeout_ms=int(self.options.request_timeout * 1000),
            )
            await self.producer.start()
        self.reader: Any = None
        if not receiving:
            return
        self.reader = self.consumer(group)
        await self.reader.start()
        self.tps = [self.lib.TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.reader.assign(self.tps)
        for tp, offset in (await self.reader.beginning_offsets(self.tps)).items():
            self.reader.seek(tp, offset)  # as the adapter: an explicit start offset
            self.trackers[tp.partition] = AckTracker(offset - 1)

    async def send(self, messages: Sequence[Message]) -> None:
        sends = [
            await self.producer.send(self.topic, value, key, headers=headers)
            for key, value, headers in messages
        ]
        await asyncio.gather(*sends)

    async def receive(self) -> list[bytes]:
        while True:
            batches = await self.reader.getmany(timeout_ms=200, max_records=self.args.max_events)
            if batches:
                break
        values: list[bytes] = []
        for tp, records in batches.items():
            tracker = self.trackers[tp.partition]
            tracker.hand_out(r.offset for r in records)
            for r in records:
                values.append(r.value)
                if tracker.ack(r.offset):
                    self.dirty.add(tp.partition)
        if self.dirty and self.flush is None:
            loop = asyncio.get_running_loop()
            self.flush = loop.call_later(self.options.commit_interval, self._commit_soon)
        return values

    def _commit_soon(self) -> None:
        self.flush = None
        if self.committing is not None or not self.dirty:
            return
        dirty, self.dirty = self.dirty, set()
        offsets = {self.tps[p]: self.trackers[p].committed + 1 for p in dirty}
        self.committing = asyncio.create_task(self._commit(offsets))

    async def _commit(self, offsets: dict[Any, int]) -> None:
        try:
            await self.reader.commit(offsets)
        finally:
            self.committing = None
            if self.dirty and self.flush is None:
                loop = asyncio.get_running_loop()
                self.flush = loop.call_later(self.options.commit_interval, self._commit_soon)

    async def close(self) -> None:
        if self.flush is not None:
            self.flush.cancel()
        if self.committing is not None:
            await self.committing
        if self.reader is not None:
            await self.reader.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def idle(self, topics: Sequence[str], seconds: float) -> None:
        consumers = [self.consumer(f"idle-{t}") for t in topics]
        await asyncio.gather(*(c.start() for c in consumers))
        for c, t in zip(consumers, topics, strict=True):
            c.assign([self.lib.TopicPartition(t, p) for p in range(PARTITIONS)])

        async def wait(c: Any) -> None:
            while True:
                await c.getmany(timeout_ms=1000)

        waits = [asyncio.create_task(wait(c)) for c in consumers]
        await asyncio.sleep(0.5)  # positions resolved, fetches going
        await measured_sleep(self.args, seconds)
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        await asyncio.gather(*(c.stop() for c in consumers))


DRIVERS: dict[str, type[Driver]] = {"confluent": Confluent, "aiokafka": AioKafka}


# ------------------------------------------------------------------ the child's measurements

_IDLE: dict[str, float] = {}


async def measured_sleep(args: argparse.Namespace, seconds: float) -> None:
    """Sleep ``seconds`` and record the CPU this process and the mock spent meanwhile."""
    cpu, mock = cpu_self(), cpu_of(args.mock_pid)
    await asyncio.sleep(seconds)
    _IDLE["cpu_s_per_10s"] = round((cpu_self() - cpu) * 10 / seconds, 3)
    _IDLE["mock_cpu_s_per_10s"] = round((cpu_of(args.mock_pid) - mock) * 10 / seconds, 3)


async def flow(driver: Driver, args: argparse.Namespace) -> dict[str, float]:
    receiving = args.child == "flow"
    await driver.open(args.topic, f"g-{args.driver}-{args.topic}", receiving=receiving)
    try:
        return await _flow(driver, args, receiving)
    finally:
        await driver.close()


async def _flow(driver: Driver, args: argparse.Namespace, receiving: bool) -> dict[str, float]:
    latencies: list[float] = []
    sending: list[float] = []  # when the last delivery report came

    async def consume(count: int, record: bool) -> None:
        got = 0 if receiving else count
        while got < count:
            values = await driver.receive()
            now = time.monotonic_ns()
            got += len(values)
            if record:
                latencies.extend((now - int(v[:20])) / 1e9 for v in values)

    async def produce(count: int) -> None:
        sent = 0

        async def producer() -> None:
            nonlocal sent
            while sent < count:
                batch = [message(sent + i) for i in range(min(args.batch, count - sent))]
                sent += len(batch)
                await driver.send(batch)

        await asyncio.gather(*(producer() for _ in range(args.producers)))
        sending.append(time.perf_counter())

    await asyncio.gather(produce(WARM_UP), consume(WARM_UP, False))
    probe = LagProbe()
    probe.start()
    cpu, mock, began = cpu_self(), cpu_of(args.mock_pid), time.perf_counter()
    await asyncio.gather(produce(args.messages), consume(args.messages, True))
    seconds = time.perf_counter() - began
    cpu, mock = cpu_self() - cpu, cpu_of(args.mock_pid) - mock
    lag = await probe.stop()
    per_10k = 10_000 / args.messages
    figures = {"messages_per_s": round(args.messages / seconds)}
    if receiving:
        latencies.sort()
        figures["sent_per_s"] = round(args.messages / (sending[-1] - began))
        figures["p50_ms"] = round(latencies[len(latencies) // 2] * 1000, 2)
        figures["p99_ms"] = round(latencies[int(len(latencies) * 0.99)] * 1000, 2)
    return {
        **figures,
        "cpu_s_per_10k": round(cpu * per_10k, 3),
        "mock_cpu_s_per_10k": round(mock * per_10k, 3),
        **lag,
    }


async def drain(driver: Driver, args: argparse.Namespace) -> dict[str, float]:
    """Open a consumer of a topic holding ``--drain-messages`` and read them all."""
    probe = LagProbe()
    probe.start()
    cpu, mock, began = cpu_self(), cpu_of(args.mock_pid), time.perf_counter()
    await driver.open(args.topic, f"g-{args.driver}-{args.topic}", sending=False)
    opened = time.perf_counter() - began
    try:
        got = 0
        while got < args.drain_messages:
            got += len(await driver.receive())
        seconds = time.perf_counter() - began
        cpu, mock = cpu_self() - cpu, cpu_of(args.mock_pid) - mock
        lag = await probe.stop()
    finally:
        await driver.close()
    per_10k = 10_000 / args.drain_messages
    return {
        "messages_per_s": round(args.drain_messages / seconds),
        "open_ms": round(opened * 1000, 1),
        "cpu_s_per_10k": round(cpu * per_10k, 3),
        "mock_cpu_s_per_10k": round(mock * per_10k, 3),
        **lag,
    }


def child(args: argparse.Namespace) -> None:
    driver = DRIVERS[args.driver](args)
    if args.child in ("flow", "send"):
        figures = asyncio.run(flow(driver, args))
    elif args.child == "drain":
        figures = asyncio.run(drain(driver, args))
    else:
        asyncio.run(driver.idle(args.topic.split(","), args.idle_seconds))
        figures = dict(_IDLE)
    print(json.dumps(figures))


# ------------------------------------------------------------------ the parent


def run_child(args: argparse.Namespace, kind: str, driver: str, topic: str, pid: int) -> Any:
    command = [sys.executable, __file__, "--child", kind, "--driver", driver]
    command += ["--bootstrap", args.bootstrap, "--topic", topic, "--mock-pid", str(pid)]
    for name in (
        "messages",
        "drain_messages",
        "producers",
        "batch",
        "max_events",
        "commit_interval",
    ):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--fetch-wait", str(args.fetch_wait), "--idle-seconds", str(args.idle_seconds)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fill(bootstrap: str, topic: str, count: int) -> None:
    """Put ``count`` messages on ``topic`` for the drain measurements (librdkafka batches
    them: many messages per record batch, as a backlog on a real broker is fetched)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(count):
        key, value, headers = message(i)
        sent: list[tuple[str, str | bytes | None]] = list(headers)
        while True:
            try:
                producer.produce(topic, value, key, headers=sent)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(30):
        raise RuntimeError(f"could not fill {topic!r}")


def versions(drivers: Sequence[str]) -> dict[str, str]:
    import confluent_kafka

    found = {
        "python": platform.python_version(),
        "confluent_kafka": str(confluent_kafka.version()),
        "librdkafka": confluent_kafka.libversion()[0],
    }
    if "aiokafka" in drivers:
        found["aiokafka"] = importlib.import_module("aiokafka").__version__
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--drain-messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--producers", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1, help="messages per send")
    parser.add_argument("--max-events", type=int, default=64, help="per receive")
    parser.add_argument("--commit-interval", type=float, default=0.005)
    parser.add_argument("--fetch-wait", type=float, default=KafkaOptions().fetch_wait)
    parser.add_argument("--idle-consumers", type=int, default=6)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--drivers", default="confluent,aiokafka", help="comma-separated")
    parser.add_argument(
        "--child", choices=["flow", "send", "drain", "idle"], help=argparse.SUPPRESS
    )
    parser.add_argument("--driver", choices=list(DRIVERS), help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--mock-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    sys.path[:0] = [str(HERE.parent / "tests" / "adapters"), str(HERE.parent / "tests")]
    from _kafka_support import start_mock

    drivers = args.drivers.split(",")
    report: dict[str, Any] = {}
    if "aiokafka" in drivers:
        try:
            importlib.import_module("aiokafka")
        except ImportError as exc:
            drivers.remove("aiokafka")
            report["aiokafka"] = f"left out: {exc} (pip install aiokafka)"
    mock = start_mock()
    args.bootstrap = mock.bootstrap
    pid = mock.process.pid
    kinds = ("flow", "send", "drain", "idle")
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {
        d: {k: [] for k in kinds} for d in drivers
    }
    try:
        for r in range(args.rounds):
            order = drivers if r % 2 == 0 else drivers[::-1]
            for d in order:
                topic = f"drv-{uuid.uuid4().hex[:10]}"
                mock.create(topic, PARTITIONS)
                rounds[d]["flow"].append(run_child(args, "flow", d, topic, pid))
            for d in order:
                topic = f"send-{uuid.uuid4().hex[:10]}"
                mock.create(topic, PARTITIONS)
                rounds[d]["send"].append(run_child(args, "send", d, topic, pid))
            topic = f"backlog-{uuid.uuid4().hex[:10]}"
            mock.create(topic, PARTITIONS)
            fill(mock.bootstrap, topic, args.drain_messages)
            for d in order:
                rounds[d]["drain"].append(run_child(args, "drain", d, topic, pid))
            for d in order:
                topics = [f"idle-{uuid.uuid4().hex[:10]}" for _ in range(args.idle_consumers)]
                for t in topics:
                    mock.create(t, PARTITIONS)
                rounds[d]["idle"].append(run_child(args, "idle", d, ",".join(topics), pid))
    finally:
        mock.stop()
    for d in drivers:
        report[d] = {}
        for kind, measured in rounds[d].items():
            figures: dict[str, Any] = {
                name: statistics.median(f[name] for f in measured) for name in measured[0]
            }
            if "messages_per_s" in figures:
                figures["messages_per_s_rounds"] = [f["messages_per_s"] for f in measured]
            report[d][kind] = figures
    report["setup"] = {
        "messages": args.messages,
        "drain_messages": args.drain_messages,
        "rounds": args.rounds,
        "producers": args.producers,
        "batch": args.batch,
        "max_events": args.max_events,
        "commit_interval": args.commit_interval,
        "fetch_wait": args.fetch_wait,
        "idle_consumers": args.idle_consumers,
        "idle_seconds": args.idle_seconds,
        **versions(drivers),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
