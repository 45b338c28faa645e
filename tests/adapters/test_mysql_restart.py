"""A workflow on MySQL survives its database server crashing and starting again: the same
``Workflow`` object, in this process, completes every run, without lost or repeated
transitions.

The server is a private MariaDB (``mariadbd``) started for this module on a data
directory and a port of its own, durable (``innodb_flush_log_at_trx_commit=1``): the
shared server other tests use is never touched. It is SIGKILLed (a crash, the hardest
case: no goodbye to the clients, nothing flushed but what the redo log has) while a
third of the runs are done and step attempts are running, and started again on the same
port and data directory once the workflow has seen the failures.

Evidence: the records table is system-versioned (as in ``test_mysql_recovery.py``), so
every committed write of a record leaves its row version, in the write's own
transaction, and each step puts a token of its attempt in the run's object. This process
logs every attempt as it starts (with its time), so an attempt committed exactly when a
row version carries its token, and a step ran again exactly when it has two attempts.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _mysql_processes import COMPLETED, DONE_VERSION, until
from _mysql_support import FAST_ROLES, admin_sql

import conveyor
from _services import unavailable
from conveyor import Builder, Run, RunState, Workflow
from conveyor.adapters.mysql import MySQLBackend
from conveyor.adapters.mysql._role_scheduler import MySQLRoleScheduler
from conveyor.adapters.mysql._topics import hub_of

pytestmark = [pytest.mark.mysql, pytest.mark.processes, pytest.mark.timeout(120)]

MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = Path("/usr/bin/mariadb-install-db")
DATABASE = "conveyor_restart"
PREFIX = "mrestart_"
ATTEMPT = "JSON_VALUE(CONVERT(object USING utf8mb4), '$.attempt')"
"""The token of the step attempt a record write committed."""
RUNS = 200
PARALLEL = 3
WORK = 0.02
"""Seconds each step takes (in its body, before its write): the crash lands in some."""


class MariaDB:
    """A private ``mariadbd`` on ``datadir``, listening on 127.0.0.1:``port`` only."""

    def __init__(self, datadir: Path, port: int) -> None:
        self.datadir = datadir
        self.port = port
        self.log = datadir.parent / "mariadbd.err"
        self.tmpdir = datadir.parent / "tmp"
        """The server's own temporary files (not the shared /tmp, where parallel
        installs have removed each other's)."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"mysql://root@127.0.0.1:{port}"
        """The server's URL, no database."""

    def install(self) -> None:
        """A new data directory, with ``root`` allowed in over TCP without a password."""
        self.tmpdir.mkdir(exist_ok=True)
        done = subprocess.run(
            [
                str(INSTALL_DB),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                f"--tmpdir={self.tmpdir}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"mariadb-install-db failed:\n{done.stdout}{done.stderr}"

    def start(self) -> None:
        """Start the server (it accepts connections a little later: ``wait_ready``)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            [
                str(MARIADBD),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.datadir.parent / 'mariadbd.sock'}",
                f"--pid-file={self.datadir.parent / 'mariadbd.pid'}",
                f"--log-error={self.log}",
                f"--tmpdir={self.tmpdir}",
                "--user=root",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=1",
                "--innodb-buffer-pool-size=64M",
                "--max-connections=200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the server answers a query, for at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        failure = ""
        while time.monotonic() < deadline:
            assert self.proc is not None, "not started"
            assert self.proc.poll() is None, (
                f"mariadbd exited with {self.proc.returncode}:\n{self.errors()}"
            )
            try:
                await admin_sql(self.url, "SELECT 1")
                return
            except Exception as exc:
                failure = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"mariadbd did not accept connections in {timeout} s ({failure}):\n{self.errors()}"
        )

    def kill(self) -> None:
        """SIGKILL the server and wait for it to be gone (its sockets closed)."""
        assert self.proc is not None, "not started"
        assert self.proc.poll() is None, f"not running:\n{self.errors()}"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Shut the server down (SIGTERM, then SIGKILL after 20 s); idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def errors(self) -> str:
        """The end of the server's error log."""
        return self.log.read_text()[-4000:] if self.log.exists() else "(no error log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A private MariaDB server, running (each test creates a database of its own)."""
    for program in (MARIADBD, INSTALL_DB):
        if not program.exists() or not os.access(program, os.X_OK):
            unavailable("MariaDB", f"{program} is missing (apt-get install mariadb-server)")
    server = MariaDB(tmp_path_factory.mktemp("mariadb") / "data", _free_port())
    server.install()
    server.start()
    try:
        asyncio.run(server.wait_ready())
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.datadir, ignore_errors=True)  # ~100 MB of InnoDB files


def _text(value: object) -> str:
    """A column's value as text (binary columns come back as bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


class Status(enum.IntEnum):
    UNKNOWN = 0
    CREATED = 1
    CHECKED = 2
    PACKED = 3
    SHIPPED = 4


@dataclass(frozen=True, slots=True)
class Attempt:
    run_id: str
    version: int
    token: str
    started: float
    """``time.monotonic()`` as the step's body began."""


class Evidence:
    """What this process saw: every step attempt as it started, every error logged."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.running: dict[str, float] = {}
        """Attempts in their body now: token -> start."""
        self.errors: list[tuple[float, str]] = []
        self.finished = 0
        """Last steps whose body returned."""
        self.third_done = asyncio.Event()
        """Set as the last step of a third of the runs returns."""
        self._tokens = itertools.count(1)

    def debug(self, msg: str, **meta: object) -> None:
        pass

    def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
        self.errors.append((time.monotonic(), f"{msg} {meta}: {exc!r}"))

    def errors_since(self, since: float) -> list[str]:
        return [text for at, text in self.errors if at >= since]

    def step(self, to: Status) -> Callable[[Run[dict[str, Any], Status]], Awaitable[Status]]:
        """The step to ``to``: logs its attempt, works ``WORK`` s, puts its token in."""

        async def run_step(run: Run[dict[str, Any], Status]) -> Status:
            token = f"a{next(self._tokens)}"
            started = time.monotonic()
            self.attempts.append(Attempt(run.run_id, run.meta.version, token, started))
            self.running[token] = started
            try:
                await asyncio.sleep(WORK)  # the crash lands in the middle of some of these
            finally:
                del self.running[token]
            run.object["attempt"] = token  # committed when a row version carries it
            if to is Status.SHIPPED:
                self.finished += 1
                if self.finished >= RUNS // 3:
                    self.third_done.set()
            return to

        return run_step


def known_topics(backend: MySQLBackend) -> dict[str, int]:
    """The last event ID of each topic as this process knows it (its ``TopicLog``s)."""
    return {topic: log.last for topic, log in hub_of(backend.database)._logs.items()}


def build(backend: conveyor.Backend, evidence: Evidence) -> Workflow[dict[str, Any], Status]:
    b = Builder("mysql restart", dict, Status)
    for start, end in itertools.pairwise(list(Status)[1:]):
        b.add_step(start, evidence.step(end), end).with_options(parallel_count=PARALLEL)
    return b.build(
        backend.streamer,
        backend.record_store,
        backend.role_scheduler,
        timeout_store=backend.timeout_store,
        logger=evidence,
    )


@pytest.mark.parametrize("outage", ["brief", "past_the_leases"])
async def test_runs_complete_exactly_once_across_a_server_crash_and_restart(
    mariadb: MariaDB, outage: str
) -> None:
    database = f"{DATABASE}_{outage}"
    admin = mariadb.url
    await admin_sql(
        admin, f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    )
    options = "&".join(f"{k}={v}" for k, v in FAST_ROLES.items())
    url = f"{admin}/{database}?table_prefix={PREFIX}&{options}&connect_timeout=2"

    async def sql(statement: str, *args: object) -> list[tuple[Any, ...]]:
        return await admin_sql(f"{admin}/{database}", statement, args)

    # Given a workflow of three steps on the private server, the records table
    # system-versioned (every committed write of a record leaves its row version)...
    await conveyor.migrate(url)
    await sql(f"ALTER TABLE `{PREFIX}records` ADD SYSTEM VERSIONING")
    evidence = Evidence()
    async with conveyor.connect(url) as backend:
        assert isinstance(backend, MySQLBackend)
        roles = backend.role_scheduler
        assert isinstance(roles, MySQLRoleScheduler)
        wf = build(backend, evidence)
        async with wf:
            # ... and 200 runs triggered
            for start in range(0, RUNS, 50):
                await asyncio.gather(
                    *(wf.trigger(f"r-{i}") for i in range(start, min(RUNS, start + 50)))
                )

            # When the server is SIGKILLed once a third of the runs are done, while step
            # attempts are in their body (so they cannot have written before the crash:
            # nothing else runs between the check and the kill)...
            async def in_body() -> bool:
                return bool(evidence.running)

            async with asyncio.timeout(20):
                await evidence.third_done.wait()
            await until("an attempt in its body", in_body, 10.0)
            assert evidence.finished < 2 * RUNS // 3, "two thirds done before the crash"
            held_at_kill = roles.held_roles()
            killed_at = time.monotonic()
            finished_at_kill = evidence.finished
            mariadb.kill()

            # ... stays down until the workflow has failed to reach it (and, past the
            # leases, until every role it held has expired: its processes stopped)...
            async def failing() -> bool:
                return len(evidence.errors_since(killed_at)) >= 3

            await until("the workflow logging failures", failing, 20.0)
            if outage == "past_the_leases":
                assert held_at_kill, "no role held at the crash"

                async def expired() -> bool:
                    return roles.held_roles() == []

                await until("every role lease lost", expired, 20.0)
            down_errors = evidence.errors_since(killed_at)
            down_for = time.monotonic() - killed_at

            # ... and starts again on the same port and data directory
            known = known_topics(backend)
            mariadb.start()
            await mariadb.wait_ready()
            restarted_at = time.monotonic()
            recovered = {
                _text(topic): int(last)
                for topic, last in await sql(f"SELECT topic, last_id FROM `{PREFIX}topics`")
            }
            # (Diagnosis: topics this process had read past the counter the server recovered,
            # events it saw committed that the crash undid: their IDs are given out again.)
            ahead = {
                t: (n, recovered.get(t, 0)) for t, n in known.items() if n > recovered.get(t, 0)
            }

            # Then every run reaches its last status, done by the same Workflow, which
            # kept running through the outage
            async def states_of_runs() -> list[tuple[Any, ...]]:
                return await sql(
                    f"SELECT version, run_state, count(*) FROM `{PREFIX}records` "
                    "GROUP BY version, run_state ORDER BY version, run_state"
                )

            async def all_done() -> bool:
                return await states_of_runs() == [(DONE_VERSION, COMPLETED, RUNS)]

            try:
                await until("every run done after the restart", all_done, 60.0)
            except AssertionError as exc:
                found = await states_of_runs()
                since = evidence.errors_since(restarted_at)
                raise AssertionError(
                    f"{exc}: (version, run_state, runs) {found}; processes {wf.states()}; "
                    f"roles held {roles.held_roles()}; {len(since)} errors since the "
                    f"restart, the last: {since[-5:]}; topics known here past the server's "
                    f"recovered counter (known, recovered): {ahead}"
                ) from None
            recovered_in = time.monotonic() - restarted_at
            states = wf.states()
            assert all(s is not conveyor.State.SHUTDOWN for s in states.values()), states
            last = await wf.lookup((await wf.record_store.latest(wf.name, "r-0")).run_id)
            assert (last.status, last.run_state) == (Status.SHIPPED, RunState.COMPLETED)
        stopped = wf.states()
        assert stopped, "the workflow has no processes"
        assert all(s is conveyor.State.SHUTDOWN for s in stopped.values()), stopped

    print(
        f"{outage}: killed at {finished_at_kill}/{RUNS} finished, down {down_for:.2f} s, "
        f"{len(down_errors)} errors meanwhile (first: {down_errors[0]}), all done "
        f"{recovered_in:.2f} s after the restart; topics known past the recovered "
        f"counter: {ahead}"
    )
    await check_records(sql)
    await check_attempts(sql, evidence, killed_at, restarted_at)


Query = Callable[..., Awaitable[list[tuple[Any, ...]]]]


async def check_records(sql: Query) -> None:
    # ... one run per foreign ID, each at its last version and completed...
    rows = await sql(
        f"SELECT count(*), count(DISTINCT foreign_id), min(version), max(version), "
        f"min(run_state), max(run_state) FROM `{PREFIX}records`"
    )
    assert tuple(rows[0]) == (RUNS, RUNS, DONE_VERSION, DONE_VERSION, COMPLETED, COMPLETED)

    # ... every version of every run written exactly once (none lost, none twice)...
    twice = await sql(
        f"SELECT run_id, version, count(*) FROM `{PREFIX}records` FOR SYSTEM_TIME ALL "
        "GROUP BY run_id, version HAVING count(*) > 1"
    )
    assert twice == [], f"record versions written twice: {twice[:5]}"
    rows = await sql(
        f"SELECT count(*), count(DISTINCT run_id), min(version), max(version) "
        f"FROM `{PREFIX}records` FOR SYSTEM_TIME ALL"
    )
    assert tuple(rows[0]) == (RUNS * DONE_VERSION, RUNS, 1, DONE_VERSION)


async def check_attempts(
    sql: Query, evidence: Evidence, killed_at: float, restarted_at: float
) -> None:
    # ... each step of each run committed by exactly one attempt, of the version before...
    committed = {
        _text(token): (_text(run_id), int(version))
        for run_id, version, token in await sql(
            f"SELECT run_id, version, {ATTEMPT} FROM `{PREFIX}records` FOR SYSTEM_TIME ALL "
            "WHERE version > 1"
        )
    }
    assert len(committed) == RUNS * (DONE_VERSION - 1), "a token committed twice"
    attempts: dict[tuple[str, int], list[Attempt]] = defaultdict(list)
    for a in evidence.attempts:
        attempts[(a.run_id, a.version)].append(a)
    for token, (run_id, version) in committed.items():
        found = [a for a in attempts[(run_id, version - 1)] if a.token == token]
        assert found, f"{run_id} v{version} committed by {token}, not an attempt of v{version - 1}"
    assert len(attempts) == RUNS * (DONE_VERSION - 1)
    for key, tried in attempts.items():
        assert sum(a.token in committed for a in tried) == 1, f"{key}: {tried}"

    # ... and a step ran again only for an attempt in flight at the crash: the attempts
    # that never committed started in the second before the crash or after it, before
    # the server was back (on a lookup answered just before the crash), at most one per
    # run, and the crash did catch some; every attempt since the restart committed.
    lost = [a for a in evidence.attempts if a.token not in committed]
    assert lost, "the crash caught no attempt in flight"
    assert any(a.started >= restarted_at for a in evidence.attempts), "nothing ran after"
    late = [a for a in lost if a.started >= restarted_at]
    assert late == [], f"attempts after the restart that did not commit: {late[:5]}"
    early = [a for a in lost if a.started < killed_at - 1.0]
    assert early == [], f"attempts lost long before the crash: {early[:5]}"
    runs_lost = [a.run_id for a in lost]
    assert len(set(runs_lost)) == len(runs_lost), f"a run lost two attempts: {lost}"
    for version in range(1, DONE_VERSION):
        ran = sum(1 for a in evidence.attempts if a.version == version)
        again = sum(1 for a in lost if a.version == version)
        assert ran == RUNS + again, f"step of v{version}: {ran} attempts, {again} lost"
    print(
        f"attempts: {len(evidence.attempts)}, lost at the crash: {len(lost)} "
        f"({sum(a.started >= killed_at for a in lost)} started after the kill)"
    )
