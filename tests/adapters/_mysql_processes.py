"""Helpers of the MySQL many-processes tests (``test_mysql_workers.py``,
``test_mysql_recovery.py``): worker processes (``_mysql_worker.py``), the journal's
tables and the triggers that log every record write, polling the database, and killing
connections server-side.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import asyncmy
from _mysql_support import FAST_ROLES, admin_sql, with_prefix

from conveyor.adapters.mysql._database import Database

__all__ = [
    "COMPLETED",
    "DONE_VERSION",
    "Worker",
    "client_ports",
    "connections_of",
    "journal_ddl",
    "kill_connections",
    "roles_spread",
    "stop_all",
    "tcp_sockets",
    "until",
    "worker_url",
]

WORKER = Path(__file__).with_name("_mysql_worker.py")
DONE_VERSION = 4
"""A finished run's version: the trigger and three steps."""
COMPLETED = 5
"""``RunState.COMPLETED``."""
T = TypeVar("T")


def worker_url(mysql_url: str, prefix: str) -> str:
    """The workers' URL: tables ``prefix``, quick role timings, migrations applied."""
    options = "&".join(f"{k}={v}" for k, v in FAST_ROLES.items())
    return with_prefix(mysql_url, prefix) + f"&{options}&migrate=true"


def journal_ddl(records: str, journal: str) -> list[str]:
    """The journal's tables (``steps`` and ``roles`` written by the workers, ``writes`` by
    the triggers on ``records``), new."""
    steps, roles, writes = (f"`{journal}{t}`" for t in ("steps", "roles", "writes"))
    # The triggers' table has no AUTO_INCREMENT column: nothing they do can touch an ID
    # the record store reads back.
    log_write = (
        f"INSERT INTO {writes} (run_id, version, attempt, conn, at) VALUES (NEW.run_id, "
        "NEW.version, JSON_UNQUOTE(JSON_EXTRACT(CONVERT(NEW.object USING utf8mb4), "
        "'$.attempt')), CONNECTION_ID(), UTC_TIMESTAMP(6))"
    )
    return [
        f"DROP TRIGGER IF EXISTS `{journal}on_insert`",
        f"DROP TRIGGER IF EXISTS `{journal}on_update`",
        f"DROP TABLE IF EXISTS {steps}, {roles}, {writes}",
        f"CREATE TABLE {steps} (seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "run_id VARCHAR(255) NOT NULL, status INT NOT NULL, version BIGINT NOT NULL, "
        "pid INT NOT NULL, attempt VARCHAR(64) NOT NULL, at DATETIME(6) NOT NULL, "
        "KEY (pid), KEY (attempt)) ENGINE=InnoDB",
        f"CREATE TABLE {roles} (seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
        "role VARCHAR(512) NOT NULL, event VARCHAR(255) NOT NULL, pid INT NOT NULL, "
        "at DATETIME(6) NOT NULL) ENGINE=InnoDB",
        f"CREATE TABLE {writes} (run_id VARCHAR(255) NOT NULL, version BIGINT NOT NULL, "
        "attempt VARCHAR(64) NULL, conn BIGINT NOT NULL, at DATETIME(6) NOT NULL, "
        "KEY (attempt), KEY (run_id, version)) ENGINE=InnoDB",
        f"CREATE TRIGGER `{journal}on_insert` AFTER INSERT ON {records} FOR EACH ROW {log_write}",
        f"CREATE TRIGGER `{journal}on_update` AFTER UPDATE ON {records} FOR EACH ROW {log_write}",
    ]


class Worker:
    """One ``_mysql_worker.py`` process; its stderr goes to a file (shown on failure)."""

    def __init__(self, url: str, journal: str, errors: Path, work: float = 0.005) -> None:
        self.errors = errors
        with errors.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), url, journal, str(work)],
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
        """Tell the worker to stop (end of its stdin)."""
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


def stop_all(workers: list[Worker]) -> dict[int, int]:
    """Stop the workers all at once; their exit codes by process ID."""
    for w in workers:
        w.close_stdin()
    return {w.pid: w.stop() for w in workers}


async def until(what: str, check: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    """Poll ``check()`` until it returns something truthy, for at most ``timeout`` s.

    Polled: the evidence is in the database, written by worker processes that cannot
    signal this one.
    """
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def roles_spread(db: Database, workers: int) -> bool:
    """Every role a live member wants is held, by ``workers`` members evenly."""
    t = db.tables
    members = await db.fetch(
        "test", f"SELECT id, wanted FROM {t.members} WHERE expires_at > UTC_TIMESTAMP(6)"
    )
    wanted = {r for _, w in members for r in json.loads(w)}
    held = await db.fetch(
        "test",
        f"SELECT role, holder FROM {t.roles} "
        "WHERE holder IS NOT NULL AND expires_at > UTC_TIMESTAMP(6)",
    )
    holders = {str(role): str(holder) for role, holder in held}
    counts = [sum(1 for r in wanted if holders.get(r) == m) for m, _ in members]
    return (
        len(members) == workers
        and bool(wanted)
        and wanted <= set(holders)
        and min(counts) > 0
        and max(counts) - min(counts) <= 1
    )


def tcp_sockets(pids: Iterable[int]) -> list[tuple[int, int, bool, int]]:
    """The TCP sockets the processes ``pids`` have open: (local port, remote port, whether
    established, pid) each (Linux: the socket inodes of ``/proc/<pid>/fd`` in
    ``/proc/net/tcp``)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir() if fds.exists() else ():
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    found: list[tuple[int, int, bool, int]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if inode in inodes:
                    port = int(local.rsplit(":", 1)[1], 16)
                    peer = int(remote.rsplit(":", 1)[1], 16)
                    found.append((port, peer, state == "01", inodes[inode]))
    return found


def client_ports(pids: Iterable[int]) -> dict[int, int]:
    """The local TCP ports of the sockets the processes ``pids`` have open: port -> pid."""
    return {port: pid for port, _, _, pid in tcp_sockets(pids)}


async def connections_of(url: str, pids: Iterable[int]) -> Counter[int | None]:
    """How many connections to the test database each of the processes ``pids`` has
    (``None``: any other process)."""
    parts = urlsplit(url)
    rows = await admin_sql(
        url,
        "SELECT host FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
        (parts.path.lstrip("/"),),
    )
    owners = client_ports(pids)
    found: Counter[int | None] = Counter()
    for (host,) in rows:
        port = str(host).rpartition(":")[2]
        found[owners.get(int(port)) if port.isdigit() else None] += 1
    return found


async def kill_connections(url: str, pids: Iterable[int] = ()) -> Counter[int | None]:
    """``KILL`` every connection to the test database but the one doing it (as a server
    restart would, seen from the clients): how many were killed of each of the processes
    ``pids`` (``None``: of any other process, this one's included)."""
    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    conn = await asyncmy.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
        connect_timeout=3,
    )
    killed: Counter[int | None] = Counter()
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT id, host FROM information_schema.processlist "
                "WHERE db = %s AND id <> CONNECTION_ID()",
                (database,),
            )
            rows = await cur.fetchall()
            owners = client_ports(pids)
            for connection_id, host in rows:
                try:
                    await cur.execute(f"KILL {int(connection_id)}")
                except asyncmy.errors.OperationalError:  # gone already
                    continue
                port = str(host).rpartition(":")[2]
                killed[owners.get(int(port)) if port.isdigit() else None] += 1
    finally:
        conn.close()
    return killed
