"""Many processes on a mixed deployment: records (and their outbox) on PostgreSQL, events
on Redis Streams, NATS JetStream, RabbitMQ streams or Kafka, roles on Redis. Three workers
of a workflow with ``parallel_count=3`` (``_broker_worker.py``); one of them is SIGKILLed
between a third and two thirds of the way, while it has a step attempt started and not
committed, or has every broker connection dropped under it.

Evidence comes from PostgreSQL. The workers journal every step attempt as it starts,
with an attempt token the step also puts in the run's object, and every role they hold.
A trigger on the records table logs every record write in the write's own transaction,
with the token of the attempt it commits and the writer's ``application_name`` (one per
worker): a logged write is a committed one, and an attempt whose token no write carries
never committed.

What bounds recovery after a SIGKILL (the URLs below set every one of them short):

- the killed worker's roles (its shards, and the relay's role if it had it) are free once
  their leases expire and taken at the next round: ``role_ttl + role_renew`` of the roles
  URL (3 + 0.25 s here; ``role_grace``, 0.5 s, only orders who takes them first);
- its events handed out and never acknowledged come again only once claimed: on Redis
  after ``claim_idle`` of the events URL (1 s here; the new holder's receiver runs
  ``XAUTOCLAIM`` every ``claim_idle / 2``), on NATS after ``ack_wait`` (1.5 s here), seen
  by a waiting receiver within ``recheck_interval`` (0.5 s here); on Kafka (the mock
  cluster) at once, the new holder's receiver opening the partitions at their committed
  offsets. Both run from the
  takeover on, so the slower of the two chains bounds it: about 4 s here, 12 s to 40 s with
  the defaults (``role_ttl`` 10 + ``role_renew`` 1, then ``claim_idle`` 30 or ``ack_wait``
  30 + ``recheck_interval`` 5).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _kafka_support import kafka
from _mysql_processes import client_ports, tcp_sockets, until
from _nats_support import delete_prefix, nats_url
from _pg_support import migrated, open_database, pg_url
from _rabbitmq_support import delete_streams, rabbitmq_url
from _redis_support import FAST_ROLES, new_prefix, open_redis, redis_url

from conveyor.adapters.redis import RedisClient

__all__ = ["kafka", "nats_url", "pg_url", "rabbitmq_url", "redis_url"]

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.processes]

WORKER = Path(__file__).with_name("_broker_worker.py")
WORKERS = 3
RUNS_EACH = 100
RUNS = WORKERS * RUNS_EACH
DONE_VERSION = 4
"""A finished run's version: the trigger and three steps."""
COMPLETED = 5
"""``RunState.COMPLETED``."""
WORK = 0.005
"""Seconds a step takes..."""
VICTIM_WORK = 0.05
"""...in the worker to be killed, which runs its steps one at a time (the engine runs a
batch's events concurrently: a step that is only slow would cost one such wait per batch
of up to 64 events, and on a broker that hands out a partition's backlog in one fetch, as
Kafka does, the victim's share was over in a few batches, between which it had nothing in
flight). So it is busy from its first event until it is killed, once one of its attempts
started less than half of ``VICTIM_WORK`` ago and has not committed: the attempt cannot
commit before the kill."""
CLAIM_IDLE = 1.0
"""Redis: a dead consumer's unacknowledged events are claimed after this long idle."""
ACK_WAIT = 1.5
"""NATS: an event neither acknowledged nor kept in progress comes again after this long."""
RECHECK = 0.5
"""NATS: how often a waiting receiver looks for events without a doorbell."""

BROKERS = [
    pytest.param("redis", id="events-on-redis"),
    pytest.param("nats", id="events-on-nats", marks=pytest.mark.nats),
    pytest.param("rabbitmq", id="events-on-rabbitmq", marks=pytest.mark.rabbitmq),
    pytest.param("kafka", id="events-on-kafka", marks=pytest.mark.kafka),
]
DROPS_CONNECTIONS = BROKERS
"""The brokers whose client connections the connection test drops."""
RABBITMQ_TOPICS = ["1", "2", "3", "4", "run-state-change", "delete"]
"""The worker's topics (``broker_processes-<these>``), whose streams a RabbitMQ test deletes."""


def _with_query(url: str, **options: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


@dataclass
class Deployment:
    """One test's installation: a PostgreSQL schema (and the journal's), a Redis key
    prefix, and a NATS prefix when the events are on NATS."""

    broker: str
    schema: str
    journal: str
    records: str
    events: str
    roles: str
    redis: RedisClient
    pg: Any

    def worker_urls(self, index: int) -> tuple[str, str, str]:
        records = _with_query(self.records, application_name=f"worker-{index}")
        return records, self.events, self.roles

    async def query(self, sql: str, *args: object) -> list[Any]:
        return list(await self.pg.fetch("test", sql.replace("{j}", self.journal), *args))


def _journal_ddl(records: str, journal: str) -> str:
    """The journal's tables (``steps`` and ``roles`` written by the workers, ``writes`` by
    the trigger on ``records``), new."""
    return f"""
DROP SCHEMA IF EXISTS "{journal}" CASCADE;
CREATE SCHEMA "{journal}";
CREATE TABLE "{journal}".steps (
    seq bigserial PRIMARY KEY, run_id text NOT NULL, status int NOT NULL,
    version bigint NOT NULL, pid int NOT NULL, attempt text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX ON "{journal}".steps (attempt);
CREATE TABLE "{journal}".roles (
    seq bigserial PRIMARY KEY, role text NOT NULL, event text NOT NULL, pid int NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE "{journal}".writes (
    seq bigserial PRIMARY KEY, run_id text NOT NULL, version bigint NOT NULL,
    attempt text, app text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX ON "{journal}".writes (attempt);
CREATE FUNCTION "{journal}".log_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO "{journal}".writes (run_id, version, attempt, app)
    VALUES (NEW.run_id, NEW.version,
            substring(convert_from(NEW.object, 'UTF8') from '"attempt":"([^"]*)"'),
            current_setting('application_name'));
    RETURN NEW;
END $$;
CREATE TRIGGER log_write AFTER INSERT OR UPDATE ON {records}
    FOR EACH ROW EXECUTE FUNCTION "{journal}".log_write();
"""


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Where the events go: ``("redis", "")``, ``("nats", <the NATS server's URL>)`` or
    ``("rabbitmq", <the RabbitMQ node's stream URL>)`` (that server is needed, and looked
    for, only then)."""
    name: str = request.param
    if name == "kafka":
        return name, _kafka_events(request.getfixturevalue("kafka"))
    if name in ("nats", "rabbitmq"):
        return name, request.getfixturevalue(f"{name}_url")
    return name, ""


def _kafka_events(cluster: Any) -> str:
    """The events URL of a Kafka test, under a prefix of this test's: on the mock cluster
    the worker's topics are created first (3 partitions each, through the mock's process:
    it has no CreateTopics); on a real one the workers create them (``create_topics``)."""
    from conveyor.adapters.kafka import escape

    prefix = f"kbw{uuid.uuid4().hex[:8]}-"
    if cluster.mock is None:
        return f"{cluster.url}?prefix={prefix}&create_topics=true"
    for t in RABBITMQ_TOPICS:
        cluster.mock.create(escape(f"broker_processes-{t}", prefix), 3)
    # the mock answers a fetch that finds nothing only after the whole fetch wait, so with
    # the default (0.05 s) events reach a worker in bunches; a real broker answers at once
    return f"{cluster.url}?prefix={prefix}&fetch_wait=0.005"


@pytest.fixture
async def deployment(
    broker: tuple[str, str], pg_url: str, redis_url: str
) -> AsyncIterator[Deployment]:
    """A fresh installation on PostgreSQL + Redis (+ NATS), removed at the end."""
    broker_name, nats_url = broker
    tag = uuid.uuid4().hex[:8]
    schema, journal = f"bw_{tag}", f"bw_{tag}_j"
    key_prefix = new_prefix()
    roles = _with_query(redis_url, key_prefix=key_prefix, **FAST_ROLES, claim_idle=CLAIM_IDLE)
    nats_prefix = f"cvtbw{tag}"
    events = (
        _with_query(nats_url, prefix=nats_prefix, ack_wait=ACK_WAIT, recheck_interval=RECHECK)
        if broker_name == "nats"
        else roles  # one URL: the streamer and the role scheduler share a pool
    )
    if broker_name == "rabbitmq":  # the broker's URL; no timeouts: receivers start at the cursor
        events = _with_query(nats_url, prefix=nats_prefix)
    if broker_name == "kafka":  # receivers start at their committed offsets
        events = nats_url
    await migrated(pg_url, schema)
    try:
        async with (
            open_redis(redis_url, prefix=key_prefix) as redis,
            open_database(pg_url, schema) as pg,
        ):
            async with pg.connection("test") as conn:
                await conn.execute(_journal_ddl(pg.tables.records, journal))
            try:
                yield Deployment(
                    broker_name,
                    schema,
                    journal,
                    _with_query(pg_url, schema=schema, migrate="true"),
                    events,
                    roles,
                    redis,
                    pg,
                )
            finally:
                async with pg.connection("test") as conn:
                    await conn.execute(
                        f'DROP SCHEMA "{journal}" CASCADE; DROP SCHEMA "{schema}" CASCADE'
                    )
    finally:
        if broker_name == "nats":
            await delete_prefix(nats_url, nats_prefix)
        if broker_name == "rabbitmq":
            await delete_streams(nats_url, _rabbitmq_streams(nats_prefix))


class Worker:
    """One ``_broker_worker.py`` process; its stderr goes to a file (shown on failure)."""

    def __init__(
        self,
        urls: tuple[str, str, str],
        journal: str,
        errors: Path,
        work: float,
        *,
        serial: bool = False,
    ) -> None:
        self.errors = errors
        args = [*urls, journal, str(work), *(["serial"] if serial else [])]
        with errors.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.pid = self.proc.pid

    async def line(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        read = asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        line = (await asyncio.wait_for(read, timeout)).strip()
        assert line, f"worker {self.pid} ended:\n{self.stderr()}"
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stderr(self) -> str:
        return self.errors.read_text()[-4000:]

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass

    def stop(self, timeout: float = 20.0) -> int:
        """Close stdin and wait for the exit (kill after ``timeout`` s); the exit code."""
        self.close_stdin()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@dataclass
class Crew:
    workers: list[Worker]
    codes: dict[int, int] = field(default_factory=dict)
    """Exit codes by process ID, once stopped."""


@asynccontextmanager
async def workers_of(d: Deployment, tmp_path: Path, slow: int | None = None) -> AsyncIterator[Crew]:
    """``WORKERS`` workers, ready, with the roles spread evenly over them; stopped (all at
    once) at the end. Worker ``slow`` runs its steps one at a time, ``VICTIM_WORK`` each;
    the others take ``WORK``, a batch's steps concurrently."""
    crew = Crew(
        [
            Worker(
                d.worker_urls(i),
                d.journal,
                tmp_path / f"worker-{i}.err",
                VICTIM_WORK if i == slow else WORK,
                serial=i == slow,
            )
            for i in range(WORKERS)
        ]
    )
    try:
        for w in crew.workers:
            assert await w.line() == "ready"
        await until("the roles spread over the workers", lambda: _roles_spread(d.redis), 30.0)
        yield crew
    finally:
        for w in crew.workers:
            w.close_stdin()
        crew.codes.update({w.pid: w.stop() for w in crew.workers})


async def _roles_spread(redis: RedisClient) -> bool:
    """Every role a live member wants is held, by ``WORKERS`` members evenly (the role
    scheduler's keys: ``<prefix>:members`` and ``<prefix>:role:<role>``)."""
    keys = redis.options.keys
    entries = await redis.command("test", "HGETALL", keys.members)
    members = {}
    for member, entry in dict(entries).items():
        _, _, wanted = entry.decode().split(" ", 2)
        members[member.decode()] = json.loads(wanted)
    wanted = sorted({r for roles in members.values() for r in roles})
    if len(members) != WORKERS or not wanted:
        return False
    holders = await redis.pipeline("test", [("GET", keys.role(r)) for r in wanted])
    counts = [sum(1 for h in holders if h is not None and h.decode() == m) for m in members]
    return None not in holders and min(counts) > 0 and max(counts) - min(counts) <= 1


async def _done(d: Deployment) -> int:
    rows = await d.query(
        f"SELECT count(*) FROM {d.pg.tables.records} WHERE version = $1 AND run_state = $2",
        DONE_VERSION,
        COMPLETED,
    )
    return int(rows[0][0])


async def _now(d: Deployment) -> datetime:
    now: datetime = (await d.query("SELECT clock_timestamp()"))[0][0]
    return now


@pytest.mark.timeout(90)
async def test_three_workers_survive_a_sigkill_with_events_on_a_broker(
    deployment: Deployment, tmp_path: Path
) -> None:
    d = deployment
    # Given three worker processes (records on PostgreSQL, events on the broker, roles on
    # Redis), with the roles spread evenly over them
    async with workers_of(d, tmp_path, slow=1) as crew:
        workers = crew.workers
        victim = workers[1]

        # When runs are triggered on every worker, and one is killed between a third and
        # two thirds of the way while it has an attempt started and not committed (started
        # recently enough that it cannot commit before the kill lands)
        for i, w in enumerate(workers):
            w.send(f"go {RUNS_EACH} w{i}")

        async def ripe() -> tuple[int, int] | None:
            (done, pending), *_ = await d.query(
                f"SELECT (SELECT count(*) FROM {d.pg.tables.records} WHERE version = $1 "
                "AND run_state = $2), (SELECT count(*) FROM {j}.steps s WHERE s.pid = $3 "
                "AND s.at > clock_timestamp() - $4 * interval '1 microsecond' "
                "AND NOT EXISTS (SELECT 1 FROM {j}.writes w WHERE w.attempt = s.attempt))",
                DONE_VERSION,
                COMPLETED,
                victim.pid,
                int(VICTIM_WORK / 2 * 1e6),
            )
            assert done <= 2 * RUNS // 3, "two thirds done before the victim was caught"
            if done >= RUNS // 3 and pending > 0:
                return int(done), int(pending)
            return None

        done_at_kill, _ = await until("a third of the runs done", ripe, 30.0)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        killed_at = await _now(d)

        # Then every run completes, at the version of its last step
        await until("every run done", lambda: _at_least(d, RUNS), 30.0)
        done_after = (await _now(d) - killed_at).total_seconds()

        # ... and every role the killed worker held is taken over (even idle ones)
        async def taken_over() -> bool:
            rows = await d.query(
                "SELECT role, event FROM {j}.roles WHERE pid = $1 ORDER BY seq", victim.pid
            )
            held = [role for role, event in dict(rows).items() if event == "acquired"]
            after = await d.query(
                "SELECT DISTINCT role FROM {j}.roles WHERE pid <> $1 AND at > $2 "
                "AND event = 'acquired'",
                victim.pid,
                killed_at,
            )
            return set(held) <= {r for (r,) in after}

        await until("the killed worker's roles taken over", taken_over, 20.0)
        stopping_at = await _now(d)
        for w in workers:
            if w is not victim:
                assert w.proc.poll() is None, f"worker {w.pid} died:\n{w.stderr()}"
    codes = crew.codes
    for w in workers:
        if w is not victim:
            assert codes[w.pid] == 0, f"worker {w.pid} exited {codes[w.pid]}:\n{w.stderr()}"
    print(f"killed at {done_at_kill} of {RUNS} runs done; all done {done_after:.2f} s later")

    await _check_records(d)
    await _check_steps(d, victim.pid)
    await _check_roles(d, victim.pid, killed_at, stopping_at, set(codes))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("broker", DROPS_CONNECTIONS, indirect=True)
async def test_a_worker_whose_broker_connections_drop_loses_nothing(
    deployment: Deployment, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    d = deployment
    # Given three worker processes with the roles spread evenly over them
    async with workers_of(d, tmp_path) as crew:
        workers = crew.workers
        victim = workers[1]

        # When two thirds of the runs are triggered on every worker, and once a third of
        # all are done every broker connection of one worker drops (Redis: killed by the
        # server; NATS, RabbitMQ: the worker's sockets shut down under its client; Kafka:
        # every broker of the mock cluster closes its connections, every worker's, and
        # refuses new ones until the victim's are all gone), then the last third is
        # triggered (so events flow through the new connections whatever the first runs
        # did meanwhile: on Kafka they were all done within half a second of the drop)
        first = 2 * RUNS_EACH // 3
        for i, w in enumerate(workers):
            w.send(f"go {first} w{i}")

        async def a_third() -> int | None:
            done = await _done(d)
            return done if done >= RUNS // 3 else None

        done_at_drop = await until("a third of the runs done", a_third, 30.0)
        dropped_at = await _now(d)
        killed = await _kill_redis_clients(d.redis, victim.pid)
        assert killed > 0, "the worker had no Redis connection"
        if d.broker in ("nats", "rabbitmq"):
            victim.send("drop")
            while (said := await victim.line()).startswith("triggered"):
                pass
            assert said.startswith("reconnected after"), said
            print(f"{d.broker} client {said}")
        if d.broker == "kafka":
            took = await _drop_kafka_connections(request.getfixturevalue("kafka"), victim.pid)
            print(f"kafka clients reconnected after {took:.2f} s")
        for i, w in enumerate(workers):
            w.send(f"go {RUNS_EACH - first} w{i}-after")

        # Then every run completes, at the version of its last step
        await until("every run done", lambda: _at_least(d, RUNS), 30.0)
        done_after = (await _now(d) - dropped_at).total_seconds()

        # ... and the worker went on: it committed steps it started after the drop
        rows = await d.query(
            "SELECT count(*) FROM {j}.steps s JOIN {j}.writes w ON w.attempt = s.attempt "
            "WHERE s.pid = $1 AND s.at > $2",
            victim.pid,
            dropped_at,
        )
        assert rows[0][0] > 0, "the worker committed no step after its connections dropped"
        for w in workers:
            assert w.proc.poll() is None, f"worker {w.pid} died:\n{w.stderr()}"
    codes = crew.codes
    for w in workers:
        assert codes[w.pid] == 0, f"worker {w.pid} exited {codes[w.pid]}:\n{w.stderr()}"
    print(
        f"dropped {killed} Redis connections at {done_at_drop} of {RUNS} runs done; "
        f"all done {done_after:.2f} s later"
    )

    await _check_records(d)
    await _check_steps(d, victim=None)


async def _kill_redis_clients(redis: RedisClient, pid: int) -> int:
    """``CLIENT KILL`` every connection of process ``pid`` to the Redis server (found in
    ``CLIENT LIST`` by the local ports of the process's sockets); how many."""
    listing = await redis.command("test", "CLIENT", "LIST", "TYPE", "normal")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    ports = client_ports([pid])
    killed = 0
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        port = fields.get("addr", "").rpartition(":")[2]
        if port.isdigit() and int(port) in ports:
            killed += int(await redis.command("test", "CLIENT", "KILL", "ID", fields["id"]))
    return killed


async def _drop_kafka_connections(cluster: Any, pid: int) -> float:
    """Take every broker of the mock cluster down (it closes every client connection, of
    every worker, and refuses new ones) until process ``pid`` has none of the connections
    it had left, then up again; wait for ``pid`` to connect again: how many seconds from
    the drop that took."""
    mock = cluster.mock
    if mock is None:
        pytest.skip("a real Kafka cluster's connections are not dropped by this test")
    before = _kafka_connections(pid, mock.ports)
    assert before, "the worker had no Kafka connection"
    started = asyncio.get_running_loop().time()
    try:
        for broker in mock.brokers:
            await asyncio.to_thread(mock.set_down, broker)

        async def closed() -> bool:
            return not before & _kafka_connections(pid, mock.ports)

        await until("the worker's Kafka connections closed", closed, 10.0)
    finally:
        for broker in mock.brokers:
            await asyncio.to_thread(mock.set_up, broker)

    async def connected() -> set[int]:
        return _kafka_connections(pid, mock.ports) - before

    await until("the worker connected to the Kafka cluster again", connected, 20.0)
    return asyncio.get_running_loop().time() - started


def _kafka_connections(pid: int, ports: set[int]) -> set[int]:
    """The local ports of process ``pid``'s established TCP connections to ``ports``."""
    return {port for port, peer, up, _ in tcp_sockets([pid]) if up and peer in ports}


def _rabbitmq_streams(prefix: str) -> list[str]:
    """The streams (events and cursors) of the worker's topics under ``prefix``."""
    from conveyor.adapters.rabbitmq import stream_name

    topics = [f"broker_processes-{t}" for t in RABBITMQ_TOPICS]
    return [stream_name(p, t) for t in topics for p in (prefix, f"{prefix}~")]


async def _at_least(d: Deployment, n: int) -> bool:
    return await _done(d) >= n


async def _check_records(d: Deployment) -> None:
    # One run per foreign ID, each at its last version...
    rows = await d.query(
        "SELECT count(*), count(DISTINCT foreign_id), min(version), max(version), "
        f"min(run_state), max(run_state) FROM {d.pg.tables.records}"
    )
    assert tuple(rows[0]) == (RUNS, RUNS, DONE_VERSION, DONE_VERSION, COMPLETED, COMPLETED)
    # ... and no record version written twice: each run has versions 1..4, each once.
    twice = await d.query(
        "SELECT run_id, version, array_agg(app || ' ' || coalesce(attempt, '-')) "
        "FROM {j}.writes "
        "GROUP BY run_id, version HAVING count(*) > 1"
    )
    assert twice == [], f"record versions written twice: {twice[:5]}"
    rows = await d.query(
        "SELECT count(*), count(DISTINCT run_id), min(version), max(version) FROM {j}.writes"
    )
    assert tuple(rows[0]) == (RUNS * DONE_VERSION, RUNS, 1, DONE_VERSION)


async def _check_steps(d: Deployment, victim: int | None) -> None:
    # Every step of every run was committed by exactly one attempt, the one whose token the
    # write of the next version carries.
    rows = await d.query(
        "SELECT s.run_id, s.version, s.pid, s.attempt, w.version IS NOT NULL, "
        "w.version = s.version + 1 FROM {j}.steps s "
        "LEFT JOIN {j}.writes w ON w.attempt = s.attempt ORDER BY s.seq"
    )
    attempts: dict[tuple[str, int], list[tuple[int, str, bool]]] = defaultdict(list)
    for run_id, version, pid, attempt, committed, next_version in rows:
        assert not committed or next_version, f"{attempt} committed the wrong version"
        attempts[(run_id, version)].append((pid, attempt, bool(committed)))
    assert len(attempts) == RUNS * (DONE_VERSION - 1)
    uncommitted = [(key, a) for key, runs in attempts.items() for a in runs if not a[2]]
    repeated = {key: runs for key, runs in attempts.items() if len(runs) > 1}
    print(f"uncommitted attempts: {len(uncommitted)}, steps run again: {len(repeated)}")
    for key, runs in attempts.items():
        committed = [a for a in runs if a[2]]
        assert len(committed) == 1, f"{key}: committed by {committed}"
    executions = await d.query("SELECT pid, count(*) FROM {j}.steps GROUP BY pid")
    assert len(executions) == WORKERS, f"not every worker ran steps: {executions}"
    if victim is None:
        return
    # Only the killed worker left attempts uncommitted (there was one at the kill)...
    assert uncommitted, "the killed worker had no attempt in flight"
    assert {pid for _, (pid, _, _) in uncommitted} == {victim}, f"{uncommitted[:5]}"
    # ... and a step ran again only after such an attempt, and only once more.
    for key, runs in repeated.items():
        *earlier, last = runs
        assert all(pid == victim and not done for pid, _, done in earlier), f"{key}: {runs}"
        assert last[0] != victim, f"{key}: {runs}"
        assert last[2], f"{key}: {runs}"


async def _check_roles(
    d: Deployment, victim: int, killed_at: datetime, stopping_at: datetime, pids: set[int]
) -> None:
    # Each role (each shard) was held by one process at a time, up to the workers'
    # shutdown (which hands roles around as they leave); the killed one's were taken over
    # by the others.
    rows = await d.query(
        "SELECT role, event, pid, at FROM {j}.roles WHERE at < $1 ORDER BY seq", stopping_at
    )
    intervals: dict[str, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    open_since: dict[tuple[str, int], datetime] = {}
    for role, event, pid, at in rows:
        if event == "acquired":
            open_since[(role, pid)] = at
        else:
            if pid != victim and at > killed_at:
                print(f"after the kill, {pid} {event} {role}")
            intervals[role].append((open_since.pop((role, pid)), at, pid))
    for (role, pid), since in open_since.items():
        intervals[role].append((since, killed_at if pid == victim else stopping_at, pid))
    for role, spans in intervals.items():
        spans.sort()
        for (_, end, pid), (start, _, next_pid) in itertools.pairwise(spans):
            assert pid == next_pid or end <= start, f"{role} held by {pid} and {next_pid} at once"
    victims_roles = {
        r for r, spans in intervals.items() if any(s[1:] == (killed_at, victim) for s in spans)
    }
    assert victims_roles, "the killed worker held no role"
    takeovers = []
    for role in victims_roles:
        after = [(start, p) for start, _, p in intervals[role] if start >= killed_at]
        assert after, f"{role} was not taken over"
        assert {p for _, p in after} <= pids - {victim}, f"{role}: {after}"
        takeovers.append(round((after[0][0] - killed_at).total_seconds(), 2))
    print(f"roles taken over from the killed worker: {len(takeovers)}, after {sorted(takeovers)}")
