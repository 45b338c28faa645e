"""Reliability under chaos, soak and a trigger race; prints its counts as one JSON line.

    python benchmarks/chaos.py [--store postgresql://... | sqlite:///path.db]
                               [--runs 3000] [--workers 4] [--rate 50]
                               [--kill-every 2] [--cut-every 1] [--cut-fraction 0.25]
                               [--timeout 600] [--keep]
    python benchmarks/chaos.py --soak [--runs 20000] [--window 2000] [--clients 1]
    python benchmarks/chaos.py --race [--rounds 20] [--triggers 50] [--clients 5]

Without ``--store`` it creates a throw-away PostgreSQL database on ``--admin-url``, migrates
it with ``conveyor.migrate`` and drops it at the end (``--keep`` keeps it, and the worker
logs, for a post-mortem).

**Chaos** (the default mode). A three-step workflow (each step journals its execution, sleeps
``--step-sleep`` so that kills land in the middle of steps, and edits the object) runs in
``--workers`` processes, each ``python -m conveyor worker chaos:worker_workflow``. This process
is a client (``async with wf.client()``): it triggers ``--runs`` runs at ``--rate`` runs/s
(a service's callers; a trigger that fails with an ``AdapterError`` is retried, after
checking whether the failed attempt had committed) and waits for each to reach its last
status. Meanwhile it SIGKILLs a random worker every ``--kill-every`` seconds and starts a
replacement, and (PostgreSQL) every ``--cut-every`` seconds terminates ``--cut-fraction`` of
the connections whose ``application_name`` starts with ``conveyor`` (the workers' and this
client's) with ``pg_terminate_backend``.

Evidence comes from the database and the journals, not from the processes under test: a
trigger on the records table copies every committed record write (run ID, version and, on
PostgreSQL, the writer's ``application_name``) into an audit table, and every step execution
is appended to its worker's journal file as it starts (a write to the kernel, so it survives
a SIGKILL). Once every wait has returned (or ``--timeout`` has passed), the workers are
stopped and it counts: runs, ``completed`` (Completed at version 4: trigger + three steps),
``duplicate_versions`` (a run ID and version committed twice: must be 0), ``writes`` (must be
4 per run), ``step_executions`` and ``re_executions`` (executions beyond one per step and run:
expected after kills and cut connections, which lose an attempt's lease or its commit;
``re_executions_after_kill`` are those whose previous attempt ran in a process killed before
they began), ``kills``, ``connections_terminated``, seconds and runs/s. Errors the client saw
are counted by type (anything but conveyor's ``AdapterError`` would be a raw driver error
leaking), as are the workers' logged warnings, errors and traceback exception types. It exits
1 (keeping the database and the logs) if a run did not complete, a version was written twice
or a run was not written exactly four times.

**Soak** (``--soak``): one process runs the workflow and triggers ``--runs`` runs, no chaos,
``--clients`` callers each triggering and waiting one run after another; per ``--window``
runs it samples the resident memory (``VmRSS``) and the p50/p99 trigger-to-done latency, and
prints the first and the last window (and every window's RSS and p50).

**Race** (``--race``): one process runs the workflow; ``--triggers`` concurrent triggers of one
foreign ID, spread over ``--clients`` backends (separate pools), ``--rounds`` times. The first
step waits until every trigger of the round has returned (so the winner's run is active all
round; ``--no-gate`` lets it run at once), then the round waits for the winner's run to
complete. Prints how many rounds had exactly one winner (must be all), the losers' error
types (should be ``WorkflowInProgress``), how many runs the foreign ID has in the store (must
be ``--rounds``) and ``overlapping_runs``: runs of the foreign ID whose first write the audit
table saw before the previous run's last write (two active runs at once: must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import enum
import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

import conveyor
from conveyor import (
    AdapterError,
    Backend,
    Builder,
    RecordNotFound,
    Run,
    RunState,
    Workflow,
    WorkflowClient,
    WorkflowInProgress,
)

HERE = Path(__file__).resolve().parent
WORKFLOW = "chaos"
DONE_VERSION = 4  # trigger + three steps
AUDIT = "chaos_audit"


class Status(enum.IntEnum):
    UNKNOWN = 0
    CREATED = 1
    CHECKED = 2
    PACKED = 3
    SHIPPED = 4


Obj = dict[str, Any]
Api = Workflow[Obj, Status] | WorkflowClient[Obj, Status]


# ---------------------------------------------------------------------------- the workflow


class Journal:
    """Appends one line per step execution, as it starts, to a file (``O_APPEND``: each
    line is one write to the kernel, which keeps it when the process is SIGKILLed)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.pid = os.getpid()

    def step(self, run: Run[Obj, Status]) -> None:
        line = f"{run.run_id} {int(run.status)} {run.meta.version} {self.pid} {time.time():.6f}\n"
        os.write(self.fd, line.encode())


def _step(
    to: Status, journal: Journal | None, sleep: float, gate: asyncio.Event | None = None
) -> Any:
    async def step(run: Run[Obj, Status]) -> Status:
        if gate is not None:
            await gate.wait()
        if journal is not None:
            journal.step(run)
        if sleep > 0:
            await asyncio.sleep(sleep)  # some work: a kill or a cut can land in it
        run.object[to.name.lower()] = os.getpid()
        return to

    return step


def builder(
    journal: Journal | None = None,
    sleep: float = 0.0,
    parallel: int = 1,
    gate: asyncio.Event | None = None,
) -> Builder[Obj, Status]:
    """The three steps; the first waits for ``gate`` (if any) to be set."""
    b = Builder(WORKFLOW, dict, Status)
    steps = (
        (Status.CREATED, Status.CHECKED),
        (Status.CHECKED, Status.PACKED),
        (Status.PACKED, Status.SHIPPED),
    )
    for start, end in steps:
        fn = _step(end, journal, sleep, gate if start is Status.CREATED else None)
        b.add_step(start, fn, end).with_options(parallel_count=parallel)
    return b


def build(backend: Backend, b: Builder[Obj, Status]) -> Workflow[Obj, Status]:
    return b.build(
        backend.streamer,
        backend.record_store,
        backend.role_scheduler,
        timeout_store=backend.timeout_store,
    )


def worker_workflow(backend: Backend) -> Workflow[Obj, Status]:
    """The workers' factory (``conveyor worker chaos:worker_workflow``), set by the
    environment: ``CHAOS_JOURNAL`` (file), ``CHAOS_STEP_SLEEP``, ``CHAOS_PARALLEL``."""
    path = os.environ.get("CHAOS_JOURNAL")
    journal = Journal(path) if path else None
    sleep = float(os.environ.get("CHAOS_STEP_SLEEP", "0"))
    parallel = int(os.environ.get("CHAOS_PARALLEL", "1"))
    return build(backend, builder(journal, sleep, parallel))


# ---------------------------------------------------------------------------- the stores


def with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    """``url`` with more query parameters (as text: ``sqlite:////abs`` must stay as it is)."""
    if not pairs:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(pairs)}"


class Store:
    """The backend under test, and the evidence it holds (read outside conveyor)."""

    kind = ""
    url = ""
    can_cut = False

    async def open(self, audit: bool) -> None:
        raise NotImplementedError

    async def close(self, keep: bool) -> None:
        raise NotImplementedError

    def worker_url(self, app: str, options: list[tuple[str, str]]) -> str:
        raise NotImplementedError

    async def runs(self, like: str) -> tuple[int, int]:
        """How many runs of the workflow have a foreign ID ``LIKE like``; how many of them
        are Completed at the last version."""
        raise NotImplementedError

    async def audit(self, like: str) -> tuple[int, list[tuple[Any, ...]]]:
        """Committed record writes of those runs; the (run, version)s committed twice."""
        raise NotImplementedError

    async def unfinished(self, like: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def spans(self, run_ids: list[str]) -> dict[str, tuple[int, int]]:
        """Per run, the audit sequence numbers of its first write (version 1) and its last."""
        raise NotImplementedError

    async def cut(self, fraction: float, rng: random.Random) -> int:
        return 0


class PostgresStore(Store):
    kind = "postgresql"
    can_cut = True

    def __init__(self, url: str | None, admin_url: str) -> None:
        self.admin_url = admin_url
        self.throwaway = url is None
        self.url = url or ""
        self.name = ""
        self._conn: asyncpg.Connection[Any] | None = None

    @staticmethod
    def _dsn(url: str) -> str:
        parts = urlsplit(url)  # conveyor's options are not the driver's
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    def _records(self) -> str:
        query = dict(parse_qsl(urlsplit(self.url).query))
        schema = query.get("schema", "conveyor").replace('"', '""')
        prefix = query.get("table_prefix", "").replace('"', '""')
        return f'"{schema}"."{prefix}records"'

    @property
    def conn(self) -> asyncpg.Connection[Any]:
        assert self._conn is not None
        return self._conn

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def open(self, audit: bool) -> None:
        if self.throwaway:
            self.name = f"conveyor_chaos_{uuid.uuid4().hex[:8]}"
            await self._admin(f'CREATE DATABASE "{self.name}"')
            parts = urlsplit(self.admin_url)
            self.url = urlunsplit((parts.scheme, parts.netloc, f"/{self.name}", "", ""))
        await conveyor.migrate(self.url)
        self._conn = await asyncpg.connect(
            self._dsn(self.url), server_settings={"application_name": "chaos-observer"}
        )
        if audit:
            await self.conn.execute(
                f"""
                DROP SCHEMA IF EXISTS {AUDIT} CASCADE;
                CREATE SCHEMA {AUDIT};
                CREATE TABLE {AUDIT}.writes (
                    seq bigserial PRIMARY KEY, run_id text NOT NULL, version bigint NOT NULL,
                    app text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
                CREATE INDEX ON {AUDIT}.writes (run_id, version);
                CREATE FUNCTION {AUDIT}.log_write() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO {AUDIT}.writes (run_id, version, app)
                    VALUES (NEW.run_id, NEW.version, current_setting('application_name'));
                    RETURN NEW;
                END $$;
                DROP TRIGGER IF EXISTS chaos_log_write ON {self._records()};
                CREATE TRIGGER chaos_log_write AFTER INSERT OR UPDATE ON {self._records()}
                    FOR EACH ROW EXECUTE FUNCTION {AUDIT}.log_write();
                """
            )

    async def close(self, keep: bool) -> None:
        if self._conn is not None:
            if not self.throwaway and not keep:
                await self.conn.execute(
                    f"DROP TRIGGER IF EXISTS chaos_log_write ON {self._records()}; "
                    f"DROP SCHEMA IF EXISTS {AUDIT} CASCADE"
                )
            await self.conn.close()
        if self.throwaway and self.name:
            if keep:
                print(f"kept database {self.name}", file=sys.stderr)
            else:
                await self._admin(f'DROP DATABASE "{self.name}" WITH (FORCE)')

    def worker_url(self, app: str, options: list[tuple[str, str]]) -> str:
        return with_query(self.url, [*options, ("application_name", app)])

    async def runs(self, like: str) -> tuple[int, int]:
        row = await self.conn.fetchrow(
            f"SELECT count(*), count(*) FILTER (WHERE run_state = $3 AND version = $4) "
            f"FROM {self._records()} WHERE workflow_name = $1 AND foreign_id LIKE $2",
            WORKFLOW,
            like,
            int(RunState.COMPLETED),
            DONE_VERSION,
        )
        assert row is not None
        return int(row[0]), int(row[1])

    async def audit(self, like: str) -> tuple[int, list[tuple[Any, ...]]]:
        ours = (
            f"SELECT w.run_id, w.version, w.app FROM {AUDIT}.writes w JOIN {self._records()} r "
            "USING (run_id) WHERE r.workflow_name = $1 AND r.foreign_id LIKE $2"
        )
        total = await self.conn.fetchval(f"SELECT count(*) FROM ({ours}) o", WORKFLOW, like)
        twice = await self.conn.fetch(
            f"SELECT run_id, version, array_agg(app) FROM ({ours}) o "
            "GROUP BY run_id, version HAVING count(*) > 1",
            WORKFLOW,
            like,
        )
        return int(total), [tuple(r) for r in twice]

    async def unfinished(self, like: str) -> list[tuple[Any, ...]]:
        rows = await self.conn.fetch(
            f"SELECT run_id, foreign_id, status, run_state, version, run_state_reason "
            f"FROM {self._records()} WHERE workflow_name = $1 AND foreign_id LIKE $2 "
            "AND NOT (run_state = $3 AND version = $4) LIMIT 20",
            WORKFLOW,
            like,
            int(RunState.COMPLETED),
            DONE_VERSION,
        )
        return [tuple(r) for r in rows]

    async def spans(self, run_ids: list[str]) -> dict[str, tuple[int, int]]:
        rows = await self.conn.fetch(
            f"SELECT run_id, min(seq) FILTER (WHERE version = 1), max(seq) FROM {AUDIT}.writes "
            "WHERE run_id = ANY($1::text[]) GROUP BY run_id",
            run_ids,
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    async def cut(self, fraction: float, rng: random.Random) -> int:
        pids = [
            int(r[0])
            for r in await self.conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'conveyor%' AND pid <> pg_backend_pid()"
            )
        ]
        if not pids:
            return 0
        chosen = rng.sample(pids, max(1, round(len(pids) * fraction)))
        done = await self.conn.fetchval(
            "SELECT count(*) FROM unnest($1::int[]) AS p WHERE pg_terminate_backend(p)", chosen
        )
        return int(done)


class SQLiteStore(Store):
    kind = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = urlsplit(url).path[1:] if url.startswith("sqlite:///") else ""

    def _query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.path, timeout=60)
        try:
            return [tuple(r) for r in db.execute(sql, args).fetchall()]
        finally:
            db.close()

    def _script(self, sql: str) -> None:
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.executescript(sql)
        finally:
            db.close()

    async def open(self, audit: bool) -> None:
        await conveyor.migrate(self.url)
        if audit:
            await asyncio.to_thread(
                self._script,
                f"""
                CREATE TABLE IF NOT EXISTS {AUDIT} (
                    seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, version INTEGER NOT NULL);
                CREATE INDEX IF NOT EXISTS {AUDIT}_by_run ON {AUDIT} (run_id, version);
                CREATE TRIGGER IF NOT EXISTS {AUDIT}_insert AFTER INSERT ON records BEGIN
                    INSERT INTO {AUDIT} (run_id, version) VALUES (NEW.run_id, NEW.version);
                END;
                CREATE TRIGGER IF NOT EXISTS {AUDIT}_update AFTER UPDATE ON records BEGIN
                    INSERT INTO {AUDIT} (run_id, version) VALUES (NEW.run_id, NEW.version);
                END;
                """,
            )

    async def close(self, keep: bool) -> None:
        if not keep:
            await asyncio.to_thread(
                self._script,
                f"DROP TRIGGER IF EXISTS {AUDIT}_insert; DROP TRIGGER IF EXISTS {AUDIT}_update; "
                f"DROP TABLE IF EXISTS {AUDIT};",
            )

    def worker_url(self, app: str, options: list[tuple[str, str]]) -> str:
        return with_query(self.url, options)

    async def runs(self, like: str) -> tuple[int, int]:
        rows = await asyncio.to_thread(
            self._query,
            "SELECT count(*), coalesce(sum(run_state = ? AND version = ?), 0) FROM records "
            "WHERE workflow_name = ? AND foreign_id LIKE ?",
            int(RunState.COMPLETED),
            DONE_VERSION,
            WORKFLOW,
            like,
        )
        return int(rows[0][0]), int(rows[0][1])

    async def audit(self, like: str) -> tuple[int, list[tuple[Any, ...]]]:
        ours = (
            f"SELECT a.run_id, a.version FROM {AUDIT} a JOIN records r ON r.run_id = a.run_id "
            "WHERE r.workflow_name = ? AND r.foreign_id LIKE ?"
        )
        total = await asyncio.to_thread(
            self._query, f"SELECT count(*) FROM ({ours})", WORKFLOW, like
        )
        twice = await asyncio.to_thread(
            self._query,
            f"SELECT run_id, version, count(*) FROM ({ours}) GROUP BY run_id, version "
            "HAVING count(*) > 1",
            WORKFLOW,
            like,
        )
        return int(total[0][0]), twice

    async def unfinished(self, like: str) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(
            self._query,
            "SELECT run_id, foreign_id, status, run_state, version, run_state_reason "
            "FROM records WHERE workflow_name = ? AND foreign_id LIKE ? "
            "AND NOT (run_state = ? AND version = ?) LIMIT 20",
            WORKFLOW,
            like,
            int(RunState.COMPLETED),
            DONE_VERSION,
        )

    async def spans(self, run_ids: list[str]) -> dict[str, tuple[int, int]]:
        marks = ", ".join("?" * len(run_ids))
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT run_id, min(CASE WHEN version = 1 THEN seq END), max(seq) FROM {AUDIT} "
            f"WHERE run_id IN ({marks}) GROUP BY run_id",
            *run_ids,
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def open_store(args: argparse.Namespace) -> Store:
    url: str | None = args.store
    if url is None or url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, args.admin_url)
    if url.startswith("sqlite:///"):
        return SQLiteStore(url)
    raise SystemExit(f"--store must be postgresql://... or sqlite:///...: {url}")


# ---------------------------------------------------------------------------- chaos


@dataclass
class Tally:
    kills: int = 0
    cuts: int = 0
    terminated: int = 0
    trigger_retries: int = 0
    committed_in_transit: int = 0
    waits: int = 0
    chaos_errors: int = 0
    client_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    bad_waits: list[str] = field(default_factory=list)


def _error_name(exc: BaseException) -> str:
    name = type(exc).__name__
    return name if isinstance(exc, AdapterError) else f"{type(exc).__module__}.{name}"


async def trigger(client: WorkflowClient[Obj, Status], foreign_id: str, tally: Tally) -> str:
    """Trigger as a service would: retry an attempt that failed in transit, after checking
    whether it had committed (only this caller triggers ``foreign_id``)."""
    failed = False
    delay = 0.05
    while True:
        if failed:
            try:
                record = await client.workflow.record_store.latest(WORKFLOW, foreign_id)
                tally.committed_in_transit += 1
                return record.run_id  # the failed attempt had committed: that run is ours
            except RecordNotFound:
                pass
            except Exception as exc:
                tally.client_errors[f"latest: {_error_name(exc)}"] += 1
                await asyncio.sleep(delay)
                delay = min(2 * delay, 1.0)
                continue
        try:
            return await client.trigger(foreign_id, initial={"id": foreign_id})
        except WorkflowInProgress:
            if not failed:
                raise
        except Exception as exc:
            tally.client_errors[f"trigger: {_error_name(exc)}"] += 1
        failed = True
        tally.trigger_retries += 1
        await asyncio.sleep(delay)
        delay = min(2 * delay, 1.0)


async def one_run(
    client: WorkflowClient[Obj, Status], foreign_id: str, at: float, tally: Tally
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, at - loop.time()))
    run_id = await trigger(client, foreign_id, tally)
    while True:
        try:
            run = await client.wait(foreign_id, run_id, Status.SHIPPED)
            break
        except Exception as exc:
            tally.client_errors[f"wait: {_error_name(exc)}"] += 1
            await asyncio.sleep(0.1)
    tally.waits += 1
    if run.run_state is not RunState.COMPLETED or run.meta.version != DONE_VERSION:
        tally.bad_waits.append(f"{run_id}: {run.run_state} v{run.meta.version}")


class Workers:
    """The worker processes: ``python -m conveyor worker chaos:worker_workflow``."""

    def __init__(self, store: Store, args: argparse.Namespace, logs: Path) -> None:
        self.store = store
        self.logs = logs
        self.options = parse_qsl(args.worker_options)
        self.env = {
            **os.environ,
            "CHAOS_STEP_SLEEP": str(args.step_sleep),
            "CHAOS_PARALLEL": str(args.parallel),
        }
        self.live: dict[int, asyncio.subprocess.Process] = {}
        self.killed: dict[int, float] = {}
        """Process ID -> when it was killed (``time.time()``)."""
        self.started = 0

    def _log(self, index: int) -> IO[bytes]:
        return (self.logs / f"worker-{index}.log").open("ab")

    async def start(self) -> int:
        index = self.started
        self.started += 1
        url = self.store.worker_url(f"conveyor-w{index}", self.options)
        log = self._log(index)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "conveyor",
                "worker",
                "chaos:worker_workflow",
                "--store",
                url,
                "--grace",
                "10",
                cwd=HERE,
                env={**self.env, "CHAOS_JOURNAL": str(self.logs / f"steps-{index}.log")},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        finally:
            log.close()
        self.live[index] = proc
        return index

    def _started(self, index: int) -> bool:
        return "worker started" in (self.logs / f"worker-{index}.log").read_text(errors="replace")

    async def ready(self, index: int, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not self._started(index):
                if self.live[index].returncode is not None:
                    raise SystemExit(f"worker {index} exited: see {self.logs}")
                await asyncio.sleep(0.1)

    async def kill_one(self, rng: random.Random) -> None:
        index = rng.choice(sorted(self.live))
        proc = self.live.pop(index)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        self.killed[proc.pid] = time.time()
        await self.start()

    async def stop(self) -> None:
        for proc in self.live.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.live.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def every(period: float, action: Callable[[], Awaitable[None]], tally: Tally) -> None:
    while True:
        await asyncio.sleep(period)
        try:
            await action()
        except Exception as exc:
            tally.chaos_errors += 1
            print(f"chaos action failed: {exc!r}", file=sys.stderr)


def read_journals(logs: Path, killed: dict[int, float]) -> dict[str, int]:
    """Step executions from the journals: total, beyond one per (run, version), and those
    of them whose previous attempt ran in a process killed before they began."""
    attempts: dict[tuple[str, int], list[tuple[float, int]]] = collections.defaultdict(list)
    malformed = 0
    for path in logs.glob("steps-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 5:
                malformed += 1
                continue
            run_id, _, version, pid, at = parts
            attempts[(run_id, int(version))].append((float(at), int(pid)))
    again = after_kill = 0
    for tries in attempts.values():
        tries.sort()
        again += len(tries) - 1
        after_kill += sum(
            1
            for (_, pid), (at, _) in itertools.pairwise(tries)
            if killed.get(pid, float("inf")) <= at
        )
    return {
        "step_executions": sum(len(t) for t in attempts.values()),
        "steps_executed": len(attempts),
        "re_executions": again,
        "re_executions_after_kill": after_kill,
        "journal_lines_malformed": malformed,
    }


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Unavailable|Conflict))\b")
_LEVEL = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (WARNING|ERROR|CRITICAL) ([\w.]+): (.{0,70})")


def read_worker_logs(logs: Path) -> dict[str, Any]:
    """What the workers logged: warnings and errors by logger and message start, and the
    exception types at the end of tracebacks."""
    levels: collections.Counter[str] = collections.Counter()
    exceptions: collections.Counter[str] = collections.Counter()
    for path in logs.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            level = _LEVEL.match(line)
            if level:
                message = re.sub(r"[0-9a-f]{8,}|\d+(\.\d+)?", "#", level.group(3))
                levels[f"{level.group(1)} {level.group(2)}: {message}"] += 1
                continue
            exception = _EXCEPTION_LINE.match(line)
            if exception:
                exceptions[exception.group(1)] += 1
    return {"log_lines": dict(levels.most_common(12)), "exceptions": dict(exceptions)}


async def chaos(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    like = f"{tag}-%"
    logs = Path(tempfile.mkdtemp(prefix="conveyor-chaos-"))
    rng = random.Random(args.seed)
    tally = Tally()
    workers = Workers(store, args, logs)
    try:
        for _ in range(args.workers):
            await workers.start()
        for index in list(workers.live):
            await workers.ready(index)
        seconds = await _drive(store, args, workers, tally, tag, rng)
    finally:
        await workers.stop()
    runs, completed = await store.runs(like)
    writes, twice = await store.audit(like)
    figures = {
        "runs": runs,
        "rate": args.rate,
        "completed": completed,
        "waits_returned": tally.waits,
        "kills": tally.kills,
        "worker_processes": workers.started,
        "connections_terminated": tally.terminated,
        "cuts": tally.cuts,
        "writes": writes,
        "duplicate_versions": len(twice),
        **read_journals(logs, workers.killed),
        "trigger_retries": tally.trigger_retries,
        "triggers_committed_in_transit": tally.committed_in_transit,
        "client_errors": dict(tally.client_errors),
        "workers_logged": read_worker_logs(logs),
        "seconds": round(seconds, 2),
        "runs_per_s": round(completed / seconds, 1),
    }
    ok = (
        completed == args.runs == runs
        and writes == DONE_VERSION * runs
        and not twice
        and not tally.bad_waits
    )
    if not ok:
        print(f"UNFINISHED: {await store.unfinished(like)}", file=sys.stderr)
        print(f"WRITTEN TWICE: {twice[:20]}", file=sys.stderr)
        print(f"BAD WAITS: {tally.bad_waits[:20]}", file=sys.stderr)
    if args.keep or not ok:
        print(f"worker logs and journals in {logs}", file=sys.stderr)
    else:
        shutil.rmtree(logs, ignore_errors=True)
    figures["ok"] = ok
    return figures


async def _drive(
    store: Store,
    args: argparse.Namespace,
    workers: Workers,
    tally: Tally,
    tag: str,
    rng: random.Random,
) -> float:
    """Trigger and wait for the runs while the chaos goes on; return the seconds taken."""

    async def kill() -> None:
        await workers.kill_one(rng)
        tally.kills += 1

    async def cut() -> None:
        tally.terminated += await store.cut(args.cut_fraction, rng)
        tally.cuts += 1

    client_url = store.worker_url("conveyor-client", parse_qsl(args.worker_options))
    async with conveyor.connect(client_url) as backend:
        wf = build(backend, builder())
        async with wf.client() as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            rate = args.rate if args.rate > 0 else float("inf")
            runs = [
                asyncio.create_task(one_run(client, f"{tag}-{i}", start + i / rate, tally))
                for i in range(args.runs)
            ]
            chaos_tasks = []
            if args.kill_every > 0:
                chaos_tasks.append(asyncio.create_task(every(args.kill_every, kill, tally)))
            if args.cut_every > 0 and store.can_cut:
                chaos_tasks.append(asyncio.create_task(every(args.cut_every, cut, tally)))
            _, pending = await asyncio.wait(runs, timeout=args.timeout)
            seconds = loop.time() - start
            for task in [*chaos_tasks, *pending]:
                task.cancel()
            await asyncio.gather(*chaos_tasks, *pending, return_exceptions=True)
            for task in runs:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    tally.client_errors[f"run: {task.exception()!r}"] += 1
    return seconds


# ---------------------------------------------------------------------------- soak


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _window(samples: list[float], runs_to: int, seconds: float) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "runs_to": runs_to,
        "rss_mb": round(rss_mb(), 1),
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "runs_per_s": round(len(ordered) / seconds, 1),
    }


async def soak(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    windows: list[dict[str, float]] = []

    async with conveyor.connect(store.url) as backend:
        wf = build(backend, builder())
        async with wf:

            async def one(fid: str, samples: list[float]) -> None:
                t0 = time.perf_counter()
                run_id = await wf.trigger(fid, initial={"id": fid})
                run = await wf.wait(fid, run_id, Status.SHIPPED)
                samples.append((time.perf_counter() - t0) * 1000)
                if run.meta.version != DONE_VERSION:
                    raise SystemExit(f"{run_id} finished at version {run.meta.version}")

            async def caller(first: int, last: int, step: int, samples: list[float]) -> None:
                for i in range(first, last, step):
                    await one(f"{tag}-{i}", samples)

            await caller(0, 100, 1, [])  # warm up (not measured)
            start = time.perf_counter()
            for low in range(0, args.runs, args.window):
                high = min(args.runs, low + args.window)
                samples: list[float] = []
                t0 = time.perf_counter()
                await asyncio.gather(
                    *(
                        caller(100 + low + c, 100 + high, args.clients, samples)
                        for c in range(args.clients)
                    )
                )
                windows.append(_window(samples, high, time.perf_counter() - t0))
                print(json.dumps(windows[-1]), file=sys.stderr, flush=True)
            seconds = time.perf_counter() - start
    runs, completed = await store.runs(f"{tag}-%")
    return {
        "runs": runs - 100,
        "completed": completed - 100,
        "clients": args.clients,
        "window": args.window,
        "first_window": windows[0],
        "last_window": windows[-1],
        "rss_mb_each": [w["rss_mb"] for w in windows],
        "p50_ms_each": [w["p50_ms"] for w in windows],
        "seconds": round(seconds, 2),
        "runs_per_s": round(args.runs / seconds, 1),
        "ok": completed - 100 == args.runs,
    }


# ---------------------------------------------------------------------------- race


async def race(store: Store, args: argparse.Namespace) -> dict[str, Any]:
    fid = f"race-{uuid.uuid4().hex[:8]}"
    rounds: list[list[str]] = []
    losers: collections.Counter[str] = collections.Counter()
    # The first step waits for the gate, which opens once every trigger of the round has
    # returned: the winner's run is active throughout the round, so a second winner would
    # be a second active run. (With --no-gate, a run may finish before its round's last
    # triggers, and one of those then rightly starts the next run.)
    gate = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        backends = [
            await stack.enter_async_context(conveyor.connect(store.url))
            for _ in range(max(1, args.clients))
        ]
        wf = build(backends[0], builder(gate=None if args.no_gate else gate))
        await stack.enter_async_context(wf)
        apis: list[Api] = [wf]
        for backend in backends[1:]:
            apis.append(await stack.enter_async_context(build(backend, builder()).client()))
        for _ in range(args.rounds):
            gate.clear()
            results = await asyncio.gather(
                *(apis[i % len(apis)].trigger(fid, initial={}) for i in range(args.triggers)),
                return_exceptions=True,
            )
            gate.set()
            losers.update(_error_name(r) for r in results if isinstance(r, BaseException))
            won = [r for r in results if isinstance(r, str)]
            async with asyncio.timeout(60):
                for run_id in won:
                    await wf.wait(fid, run_id, Status.SHIPPED)
            rounds.append(won)
    runs, completed = await store.runs(fid)
    one_winner = sum(len(won) == 1 for won in rounds)
    overlapping = _overlaps(await store.spans([r for won in rounds for r in won]))
    return {
        "rounds": args.rounds,
        "triggers": args.triggers,
        "clients": len(apis),
        "gated": not args.no_gate,
        "rounds_with_one_winner": one_winner,
        "winners_each": [len(won) for won in rounds],
        "overlapping_runs": overlapping,
        "loser_errors": dict(losers),
        "runs_in_store": runs,
        "completed": completed,
        "ok": overlapping == 0
        and runs == completed == sum(len(won) for won in rounds)
        and (args.no_gate or one_winner == args.rounds),
    }


def _overlaps(spans: dict[str, tuple[int, int]]) -> int:
    """Runs of the foreign ID created (in the audit's commit order) before the previous
    one's last write: two active runs at once."""
    ordered = sorted(spans.values())
    return sum(b[0] < a[1] for a, b in itertools.pairwise(ordered))


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", default=None, help="default: a throw-away PostgreSQL database")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--soak", action="store_true")
    parser.add_argument("--race", action="store_true")
    parser.add_argument("--runs", type=int, default=None, help="3000 (chaos), 20000 (soak)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50.0, help="runs/s triggered (0: at once)")
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--cut-every", type=float, default=1.0)
    parser.add_argument("--cut-fraction", type=float, default=0.25)
    parser.add_argument("--step-sleep", type=float, default=0.005)
    parser.add_argument("--parallel", type=int, default=4, help="parallel_count of each step")
    parser.add_argument(
        "--worker-options",
        default=None,
        help="URL options of the workers (default: role_ttl=3&role_renew=0.25&role_grace=0.5 "
        "on PostgreSQL, lease_ttl=2 on SQLite)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the database and the logs")
    parser.add_argument("--window", type=int, default=2000, help="--soak: runs per sample")
    parser.add_argument("--clients", type=int, default=None, help="--soak: 1, --race: 5")
    parser.add_argument("--rounds", type=int, default=20, help="--race")
    parser.add_argument("--triggers", type=int, default=50, help="--race: per round")
    parser.add_argument("--no-gate", action="store_true", help="--race: runs may finish early")
    args = parser.parse_args()
    store = open_store(args)
    if args.worker_options is None:
        pg = "role_ttl=3&role_renew=0.25&role_grace=0.5"
        args.worker_options = pg if store.kind == "postgresql" else "lease_ttl=2"
    mode = "race" if args.race else "soak" if args.soak else "chaos"
    if args.runs is None:
        args.runs = 20_000 if args.soak else 3_000
    if args.clients is None:
        args.clients = 5 if args.race else 1
    figures = asyncio.run(_main(store, args, mode))
    print(
        json.dumps(
            {
                "benchmark": f"chaos-{mode}" if mode != "chaos" else "chaos",
                "store": store.kind,
                **({"workers": args.workers} if mode == "chaos" else {}),
                **figures,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )
    if not figures["ok"]:
        sys.exit(1)


async def _main(store: Store, args: argparse.Namespace, mode: str) -> dict[str, Any]:
    await store.open(audit=mode != "soak")
    figures: dict[str, Any] = {"ok": False}
    try:
        if mode == "race":
            figures = await race(store, args)
        elif mode == "soak":
            figures = await soak(store, args)
        else:
            figures = await chaos(store, args)
        return figures
    finally:
        await store.close(args.keep or not figures["ok"])


if __name__ == "__main__":
    main()
