"""Connections to one SQLite file, the thread that may wait on it, and the retry rules.

Every adapter talks to SQLite through a ``Database``, which owns two standard-library
``sqlite3`` connections:

- the *thread connection*, driven by a dedicated thread (never the event loop's default
  executor). Anything that may wait runs there: a write that meets another process's
  write lock waits in ``busy_timeout`` on that thread, never on the event loop.
- the *inline connection*, used on the event loop's thread for short transactions that
  never wait: its ``busy_timeout`` is 0, so where SQLite would wait (another
  connection holds the write lock; recovery after a crash) it fails at once with
  ``SQLITE_BUSY`` and the job goes to the thread instead. In WAL mode readers never
  wait for writers, and ``synchronous=NORMAL`` commits do not fsync; this connection
  never checkpoints (checkpoints, which fsync, run on the thread). Measured reason for
  this deviation from "everything on the thread": on a 2-CPU VM a trip to the thread
  and back costs 100-200 microseconds while an indexed read takes about 10 and a
  small commit 50-100, and under load the thread and the loop fight over the GIL.
  On that VM the 3-step benchmark (``benchmarks/throughput.py``, one process) ran
  about 4,000 steps/s with a p50 trigger-to-done latency of 3.5 ms with everything on
  the thread, and about 7,000 steps/s and 1.5 ms with inline transactions.
  ``Database(inline=False)`` (``?inline=false`` in a URL) sends everything to the
  thread.

A job is a whole transaction: no transaction is ever held open across an ``await``,
two transactions never interleave on a connection, and a caller cancelled while its job
runs on the thread leaves nothing half done (the job commits or rolls back on its own;
a job cancelled before it started never runs). Write jobs start with ``BEGIN
IMMEDIATE`` (take the write lock first, so a transaction never has to upgrade a stale
read snapshot). ``SQLITE_BUSY``/``SQLITE_LOCKED`` are retried with backoff up to
``lock_timeout``; callers never see "database is locked", only ``AdapterUnavailable``
if the lock stays taken that long. Every other driver error becomes an
``AdapterError`` with the driver's exception as its cause.

The thread also notices other connections' commits (other processes) with ``PRAGMA
data_version``, checked after each batch of jobs and, while idle, at an interval that
starts at ``min_poll`` after a change and backs off to ``max_poll``: see ``Changes`` and
``Hub``.

This module stays above the ~400-line budget: ``Database`` is one object because its
parts share one state (the job queue, both connections, the loop, the closed flag), and
the inline path, the thread's job loop, the retry rule and shutdown must agree on it;
splitting it would add a call boundary to every job, the adapters' hottest path. Change
tracking (``_changes``) is already apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from ..._errors import AdapterError, AdapterUnavailable
from ..._migration import MigrationReport
from ._changes import Changes
from ._hub import Hub
from ._schema import apply_schema, check_schema

__all__ = ["Database", "from_us", "to_us", "wall_us"]

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_CHECKPOINT_EVERY: Final = 100  # inline commits between checkpoints
_RESTART_FRAMES: Final = 2000  # WAL frames (of a page each) before it starts over
_STAY_QUICK: Final = 0.25  # seconds of polling at min_poll after the file last changed


def to_us(moment: datetime) -> int:
    """Integer microseconds since the epoch (naive datetimes are taken as UTC): lossless."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def from_us(us: int) -> datetime:
    """The aware UTC datetime of ``to_us``'s integer."""
    return _EPOCH + timedelta(microseconds=us)


def wall_us() -> int:
    """The wall clock now, in microseconds since the epoch."""
    return time.time_ns() // 1000


class _Busy(Exception):
    """The job met a lock held by another connection: retry the whole job later."""


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc)
    return "locked" in message or "busy" in message


def _translate(exc: sqlite3.Error, path: str) -> AdapterError:
    code = getattr(exc, "sqlite_errorcode", None)
    if (code is not None and code & 0xFF == sqlite3.SQLITE_CANTOPEN) or (
        "unable to open" in str(exc)
    ):
        return AdapterUnavailable(f"cannot open SQLite database {path!r}: {exc}")
    return AdapterError(f"SQLite error on {path!r}: {exc}")


def _rollback(conn: sqlite3.Connection) -> bool:
    """Roll back an open transaction; False if the connection cannot (do not reuse it)."""
    if not conn.in_transaction:
        return True
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        return False
    return True


_READ, _WRITE, _RAW = 0, 1, 2
_STOP: Final = object()


class _Item:
    """A job queued for the thread: ``fn`` of ``kind``, answered through ``future``."""

    __slots__ = ("fn", "future", "kind")

    def __init__(
        self,
        future: asyncio.Future[Any] | None,
        fn: Callable[[sqlite3.Connection], Any],
        kind: int,
    ) -> None:
        self.future = future
        self.fn = fn
        self.kind = kind


_Done = list[tuple["asyncio.Future[Any]", bool, Any]]


class Database:
    """Connections to one SQLite file: a dedicated thread's, and the inline one.

    ``await open()`` connects (WAL, ``synchronous=NORMAL``, ``busy_timeout``,
    ``foreign_keys``) and creates or checks the schema. ``fast_read(fn)`` and
    ``fast_write(fn)`` run ``fn(connection)`` inline when that cannot wait, else on the
    thread; ``read(fn)`` and ``write(fn)`` always on the thread (``write`` inside
    ``BEGIN IMMEDIATE`` ... ``COMMIT``). ``close()`` closes both and ends the thread.
    """

    def __init__(
        self,
        path: str,
        *,
        busy_timeout: float = 1.0,
        lock_timeout: float = 30.0,
        watch: bool = True,
        inline: bool = True,
        min_poll: float = 0.002,
        max_poll: float = 0.05,
        label: str = "conveyor-sqlite",
    ) -> None:
        self.path = path
        self.hub: Hub = Hub()
        self._busy_timeout = busy_timeout
        self._lock_timeout = lock_timeout
        self._watch = watch
        self._use_inline = inline
        self._min_poll = min_poll
        self._max_poll = max(min_poll, max_poll)
        self._label = label
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None  # the thread's
        self._inline: sqlite3.Connection | None = None  # the loop thread's
        self._inline_commits = 0
        self._closed = False
        self._stopped: asyncio.Future[None] | None = None
        self._changes = Changes()
        self._watching = False
        self.migration: MigrationReport | None = None
        """What ``open(create_schema=True)`` did to the schema (``None`` before, or when
        it only checked the schema)."""

    # ------------------------------------------------------------------ lifecycle

    async def open(self, *, create_schema: bool = True) -> None:
        """Start the thread, connect, and create (or check) the schema."""
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.hub.bind(loop)
        self._stopped = loop.create_future()
        self._thread = threading.Thread(target=self._serve, name=self._label, daemon=True)
        self._thread.start()
        try:
            await self._run(self._connect, _RAW)
            if create_schema:
                self.migration = await self._run(apply_schema, _WRITE)
            else:
                await self._run(check_schema, _WRITE)
            if self._use_inline:
                await self._run(self._open_inline, _RAW)
            if self._watch:
                await self._run(self._start_watching, _READ)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connections and end the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        stopped = self._stopped
        if self._thread is None or stopped is None:
            return
        self._queue.put(_STOP)
        await asyncio.shield(stopped)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    # ------------------------------------------------------------------ jobs

    async def read(self, fn: Job[T]) -> T:
        """Run ``fn(connection)`` on the thread, outside any explicit transaction."""
        result: T = await self._run(fn, _READ)
        return result

    async def write(self, fn: Job[T]) -> T:
        """Run ``fn(connection)`` on the thread inside ``BEGIN IMMEDIATE`` ... ``COMMIT``.

        If ``fn`` raises, the transaction is rolled back and the exception propagates.
        """
        result: T = await self._run(fn, _WRITE)
        return result

    async def fast_read(self, fn: Job[T]) -> T:
        """``read``, inline when it need not wait: for indexed lookups and short ranges."""
        conn = self._inline
        if conn is not None and not self._closed:
            try:
                return fn(conn)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise _translate(exc, self.path) from exc
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
            finally:
                if not _rollback(conn):
                    self._drop_inline()
        return await self.read(fn)

    async def fast_write(self, fn: Job[T]) -> T:
        """``write``, inline when the write lock is free at once: for short transactions."""
        conn = self._inline
        if conn is not None and not self._closed:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                pass  # the lock is taken (or worse): the thread waits for it
            else:
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    if not _rollback(conn):
                        self._drop_inline()
                    if not _is_busy(exc):
                        raise _translate(exc, self.path) from exc
                except BaseException as exc:
                    if not _rollback(conn):
                        self._drop_inline()
                    if isinstance(exc, sqlite3.Error):
                        raise _translate(exc, self.path) from exc
                    raise
                else:
                    self._inline_commits += 1
                    if self._inline_commits % _CHECKPOINT_EVERY == 0:
                        self._queue.put(_Item(None, _checkpoint, _READ))
                    return result
        return await self.write(fn)

    def note_own(self, kind: str, count: int) -> None:
        """A write job (either connection) inserted ``count`` rows of ``kind``."""
        self._changes.note_own(kind, count)

    async def _run(self, fn: Callable[[sqlite3.Connection], Any], kind: int) -> Any:
        delay = 0.001
        deadline: float | None = None
        while True:
            if self._closed:
                raise AdapterError(f"SQLite database {self.path!r} is closed")
            loop = self._loop
            assert loop is not None, "Database.open() was not awaited"
            future: asyncio.Future[Any] = loop.create_future()
            self._queue.put(_Item(future, fn, kind))
            try:
                return await future
            except _Busy as exc:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._lock_timeout
                if now >= deadline:
                    raise AdapterUnavailable(
                        f"SQLite database {self.path!r} stayed locked for {self._lock_timeout:g}s"
                    ) from exc.__cause__
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc

    def _drop_inline(self) -> None:
        """Stop using an inline connection that failed to roll back (closed on the thread)."""
        conn, self._inline = self._inline, None
        if conn is not None:
            self._queue.put(_Item(None, lambda _: conn.close(), _READ))

    # ------------------------------------------------------------------ the thread

    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        done: _Done = []
        idle = self._max_poll
        busy_until = 0.0
        while True:
            try:
                item = self._queue.get(timeout=idle if self._watching else None)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush(loop, done)
                self._shutdown(loop)
                return
            if isinstance(item, _Item):
                future = item.future
                if future is None:  # housekeeping: nobody waits for it
                    with contextlib.suppress(Exception):
                        self._execute_job(item.fn, item.kind)
                elif not future.done():  # cancelled before it started: never run it
                    done.append(self._execute(future, item.fn, item.kind))
                if len(done) < 64 and not self._queue.empty():
                    continue  # answer a burst of jobs in one wake-up of the loop
            if self._watching:
                now = time.monotonic()
                if self._check_changes(loop):
                    busy_until = now + _STAY_QUICK
                if now < busy_until:
                    idle = self._min_poll
                elif item is None:
                    idle = min(idle * 1.5, self._max_poll)
            self._flush(loop, done)

    def _execute(
        self, future: asyncio.Future[Any], fn: Callable[[sqlite3.Connection], Any], kind: int
    ) -> tuple[asyncio.Future[Any], bool, Any]:
        try:
            return future, True, self._execute_job(fn, kind)
        except BaseException as exc:
            return future, False, exc

    def _execute_job(self, fn: Callable[[sqlite3.Connection], Any], kind: int) -> Any:
        conn = self._conn
        try:
            if kind == _RAW:  # _connect, _open_inline: no transaction
                return fn(conn)  # type: ignore[arg-type]
            if conn is None:
                raise AdapterError(f"SQLite database {self.path!r} is not connected")
            if conn.in_transaction:  # never start a job mid-transaction
                self._reset()
                conn = self._connection()
            if kind == _WRITE:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    self._reset()
                    raise
                return result
            try:
                return fn(conn)
            finally:
                if conn.in_transaction:
                    self._reset()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _Busy() from exc
            raise

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            raise AdapterError(f"SQLite database {self.path!r} is not connected")
        return conn

    def _reset(self) -> None:
        """Roll back; a connection that cannot is closed and replaced, never reused."""
        conn = self._conn
        if conn is None or _rollback(conn):
            return
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        self._conn = None
        self._connect(None)

    def _flush(self, loop: asyncio.AbstractEventLoop, done: _Done) -> None:
        if not done:
            return
        batch = done.copy()
        done.clear()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_resolve, batch)

    def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watching = False
        for attr in ("_inline", "_conn"):
            conn = getattr(self, attr)
            setattr(self, attr, None)
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    _rollback(conn)
                    conn.close()
        stopped = self._stopped
        if stopped is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, [(stopped, True, None)])
        # Jobs that raced with close(): fail them rather than leave them pending.
        leftovers: _Done = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Item) and item.future is not None:
                error = AdapterError(f"SQLite database {self.path!r} is closed")
                leftovers.append((item.future, False, error))
        self._flush(loop, leftovers)

    def _configure(self, conn: sqlite3.Connection, busy_ms: int) -> None:
        conn.row_factory = sqlite3.Row  # adapters read rows by column name
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise AdapterError(f"SQLite database {self.path!r} cannot use WAL ({mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA temp_store = MEMORY")

    def _connect(self, _conn: sqlite3.Connection | None) -> None:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            cached_statements=256,
        )
        try:
            self._configure(conn, int(self._busy_timeout * 1000))
            conn.execute("PRAGMA journal_size_limit = 16777216")  # WAL kept under 16 MiB
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _open_inline(self, _conn: sqlite3.Connection | None) -> None:
        conn = sqlite3.connect(
            self.path,
            timeout=0,
            isolation_level=None,
            check_same_thread=False,  # opened and closed here, used on the loop's thread
            cached_statements=256,
        )
        try:
            self._configure(conn, 0)
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the thread checkpoints
        except BaseException:
            conn.close()
            raise
        self._inline = conn

    # ------------------------------------------------------------------ change tracking

    def _start_watching(self, conn: sqlite3.Connection) -> None:
        self._changes.start(conn)
        self._watching = True

    def _check_changes(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Post the keys other processes wrote since the last look (``Changes``); True if
        anyone (this process's inline connection included) committed meanwhile."""
        conn = self._conn
        if conn is None:
            return False
        try:
            changed, changes = self._changes.check(conn)
        except sqlite3.Error:
            self._reset()
            return False
        if changes:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.hub.remote, changes)
        return changed


def _checkpoint(conn: sqlite3.Connection) -> None:
    """Copy the WAL into the database (without blocking writers), and once the WAL is
    long and fully copied, have the next writer start it over from the beginning.

    The inline connection never checkpoints (a checkpoint fsyncs), and a passive
    checkpoint alone lets the WAL grow while writes never pause; ``RESTART`` holds new
    writers off for the moment it takes (they wait on the thread, not on the loop).
    """
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if row is not None and row["log"] >= _RESTART_FRAMES and row["checkpointed"] == row["log"]:
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()


def _resolve(batch: _Done) -> None:
    for future, ok, value in batch:
        if future.done():
            continue  # the caller was cancelled; a write job still committed or rolled back
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
