"""The connections one MySQL backend shares: a pool, sessions set up alike, and wake-ups.

Every unit of work runs on a pooled connection (``_kit._pool.Pool``) through
``Database.run``: a connection whose statement was cancelled or failed in transit is
closed, never put back; after a connection failure the idle ones are dropped too (after a
server restart they are all dead), and reads are retried once on a fresh connection.
Writes are retried only when the server rolled the whole transaction back itself (a
deadlock or a lock wait timeout), never after a lost ``COMMIT`` (whether it applied is
unknown; the engine's compare-and-set makes its own retry safe).

Sessions: autocommit on (a unit of work opens its own transaction), READ COMMITTED (the
stores re-check under row locks, as on PostgreSQL), UTC for ``DATETIME`` values, utf8mb4,
strict SQL mode (a value that does not fit is an error, not silently cut).

Server restarts. MariaDB (and MySQL) make a commit visible to other sessions before it is
durable: after a crash, recovery may undo commits that readers had already seen (never one
whose client was told it succeeded), and the event log's ID counters go back with them, so
the same IDs are given to new events. What this process learned from reads before a crash
is therefore not to be trusted after it. Every new connection reads which run of the
server it reached (``server_start``: its start time and ``server_id``); when that changes,
the server restarted (or the URL now reaches another server): ``restarts`` counts up and the
``on_restart`` callbacks run, synchronously, before the connection is handed out, so
before any result of the new server is read. A reader that awaited a query while
``restarts`` moved drops what it read (it cannot tell which server answered it).

Wake-ups: MySQL has nothing like LISTEN/NOTIFY. A write in this process fires the
``Signal`` of what it changed, so waiters here wake at once; waiters poll for other
processes' writes (adaptively, see the streamer).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncmy

from ..._errors import AdapterError
from ..._kit._pool import Driver, Pool
from ..._kit._signal import Signal
from ..._urls import scrub
from ._driver import Connection, Cursor
from ._errors import DEADLOCK, LOCK_WAIT_TIMEOUT, error_code, is_connection_error, translate
from ._options import ConnectArgs, MySQLOptions, Tables

__all__ = ["Connection", "Cursor", "Database"]

T = TypeVar("T")
Row = tuple[Any, ...]  # Any: a column's value is whatever type the driver decodes

log = logging.getLogger("conveyor.adapters.mysql")

SESSION = (
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET time_zone = '+00:00'",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
)
_TRANSIENT = (DEADLOCK, LOCK_WAIT_TIMEOUT)
_WRITE_ATTEMPTS = 5

_START_QUERIES = (
    # ``Uptime`` is the statement's start second minus the server's, ``UNIX_TIMESTAMP()``
    # the statement's start second: in one statement, the server's start second exactly.
    "SELECT UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS SIGNED), @@server_id "
    "FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'",
    # MySQL 5.7+ moved the status variables to the performance schema.
    "SELECT UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS SIGNED), @@server_id "
    "FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Uptime'",
)


async def server_start(cur: Cursor) -> object:
    """Which run of which server ``cur``'s session reached: the same value for every
    session until the server restarts (``None`` if the server does not tell). Raises the
    driver's error if the connection fails."""
    for sql in _START_QUERIES:
        try:
            await cur.execute(sql)
        except Exception as exc:
            if error_code(exc) is None or is_connection_error(exc):
                raise
            continue  # not this server's catalogue: the next query
        row = await cur.fetchone()
        if row is not None:
            return tuple(row)
    return None


class Database:
    """The pool and the signals of one backend. ``await Database.open(url)``; ``close()``."""

    def __init__(self, args: ConnectArgs, options: MySQLOptions) -> None:
        self.args = args
        self.options = options
        self.tables: Tables = Tables(options.table_prefix)
        self._pool: Pool[Connection] = Pool(
            Driver(
                name="MySQL",
                connect=self.connect,
                is_open=lambda c: bool(c.connected),
                is_clean=lambda c: not c.get_transaction_status(),
                terminate=lambda c: c.close(),
                close=_close,
            ),
            options.pool_max,
        )
        self._signals: dict[str, Signal] = {}
        self._closed = False
        self._server: object = None
        self._restart_callbacks: list[weakref.WeakMethod[Callable[[], None]]] = []
        self.restarts: int = 0
        """How many server restarts this database has seen (module docstring)."""

    @classmethod
    async def open(cls, url: str, **options: Any) -> Database:
        """Connect to ``url`` (``mysql://`` or ``mariadb://``) and check (or, with
        ``migrate``, apply) the schema. Raises ``AdapterError``."""
        from ._options import split_url
        from ._schema import apply, check_schema

        args, settings = split_url(url, options)
        db = cls(args, settings)
        try:
            await db._pool.fill(max(1, settings.pool_min))
            if settings.migrate:
                await db.run("migrating the schema", lambda c: apply(c, db.tables, args.database))
            await check_schema(db)
        except BaseException:
            await db.close()
            raise
        return db

    @property
    def url(self) -> str:
        return self.args.url

    async def connect(self) -> Connection:
        """A new connection with conveyor's session settings (not from the pool)."""
        a = self.args
        # A cancellation must not be lost here: loops stopped by cancelling them (the role
        # scheduler's, the pruner's, the receivers' polls) reconnect in this call, and one
        # that lost its cancellation would run on and never end. On Python 3.11
        # ``asyncio.wait_for`` returns the result when a cancellation arrives just as the
        # awaited work completes, and asyncmy's connect waits for the TCP connection with
        # it: so, not wait_for here, and a cancellation requested during the connect
        # (counted by ``Task.cancelling()``) is raised after it, whatever it returned.
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                try:
                    conn: Connection = await asyncmy.connect(
                        host=a.host,
                        port=a.port,
                        user=a.user,
                        password=a.password,
                        database=a.database,
                        charset="utf8mb4",
                        autocommit=True,
                        connect_timeout=self.options.connect_timeout,
                    )
                except Exception:
                    if task is not None and task.cancelling() > requested:
                        raise asyncio.CancelledError from None  # (a timeout's: TimeoutError)
                    raise
                if task is not None and task.cancelling() > requested:
                    conn.close()
                    raise asyncio.CancelledError
        except Exception as exc:
            error = translate(exc, f"connecting to {a.host}:{a.port}", a.url)
            raise type(error)(scrub(str(error), a.url)) from None
        try:
            async with conn.cursor() as cur:
                for statement in SESSION:
                    await cur.execute(statement)
                server = await server_start(cur)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, Exception):
                raise translate(exc, "setting up a session", a.url) from None
            raise
        self._reached(server)
        return conn

    def _reached(self, server: object) -> None:
        """A new connection reached run ``server`` of the server: if that is not the run
        the earlier ones reached, the server restarted (module docstring)."""
        if server is None or server == self._server:
            return
        restarted = self._server is not None
        self._server = server
        if not restarted:
            return
        self.restarts += 1
        log.warning(
            "the MySQL server at %s restarted: reading the event log again from what it kept",
            scrub(f"{self.args.host}:{self.args.port}", self.args.url),
        )
        alive = []
        for ref in self._restart_callbacks:
            callback = ref()
            if callback is not None:
                alive.append(ref)
                try:
                    callback()
                except Exception:  # a bug; the others must still forget what they read
                    log.exception("a restart callback failed")
        self._restart_callbacks = alive

    def on_restart(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (a bound method, held weakly) when a restart of the server is
        seen, before the connection that saw it is used (module docstring)."""
        self._restart_callbacks.append(weakref.WeakMethod(callback))

    def signal(self, name: str) -> Signal:
        """The in-process wake-up for ``name`` (a topic, the timeouts, the records)."""
        found = self._signals.get(name)
        if found is None:
            found = self._signals[name] = Signal()
        return found

    async def close(self) -> None:
        """Close the pool (idempotent); work still running fails with ``AdapterError``."""
        if self._closed:
            return
        self._closed = True
        await self._pool.close()

    # ------------------------------------------------------------------ statements

    async def _acquire(self, what: str) -> Connection:
        if self._closed:
            raise AdapterError(f"MySQL backend is closed (while {what})")
        try:
            return await self._pool.acquire(self.options.acquire_timeout)
        except AdapterError:
            raise
        except Exception as exc:
            raise translate(exc, what, self.url) from None

    def _release_failed(self, conn: Connection, exc: BaseException) -> None:
        # Anything but a statement the server refused leaves the connection unknown
        # (cancelled mid-statement, lost): close it.
        broken = not (isinstance(exc, Exception) and error_code(exc) is not None) or (
            is_connection_error(exc)
        )
        self._pool.release(conn, broken=broken)
        if broken and is_connection_error(exc):
            self._pool.drop_idle()

    @asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[Connection]:
        """A pooled connection for one unit of work (its errors are translated)."""
        conn = await self._acquire(what)
        try:
            yield conn
        except BaseException as exc:
            self._release_failed(conn, exc)
            if isinstance(exc, Exception) and not isinstance(exc, AdapterError):
                raise translate(exc, what, self.url) from exc
            raise
        self._pool.release(conn)

    async def run(
        self, what: str, work: Callable[[Connection], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run ``work`` on a pooled connection; with ``retry`` (reads only) a connection
        failure is retried once on a new connection. Raises ``AdapterError``."""
        for attempt in (0, 1):
            conn = await self._acquire(what)
            try:
                result = await work(conn)
            except BaseException as exc:
                self._release_failed(conn, exc)
                if isinstance(exc, AdapterError) or not isinstance(exc, Exception):
                    raise
                if attempt == 0 and retry and is_connection_error(exc):
                    continue
                raise translate(exc, what, self.url) from exc
            self._pool.release(conn)
            return result
        raise AssertionError("unreachable")

    async def transaction(self, what: str, work: Callable[[Cursor], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction (``BEGIN`` ... ``COMMIT``) and return its result.

        A deadlock or lock wait timeout (the server rolled the transaction back) runs the
        work again, up to five times; nothing else is retried. ``work`` must not keep
        state between its attempts.
        """
        for attempt in range(_WRITE_ATTEMPTS):

            async def once(conn: Connection) -> T:
                async with conn.cursor() as cur:
                    await cur.execute("BEGIN")
                    try:
                        result = await work(cur)
                        await cur.execute("COMMIT")
                    except BaseException:
                        if conn.connected and conn.get_transaction_status():
                            try:
                                await asyncio.shield(conn.rollback())
                            except Exception:  # the connection is closed below anyway
                                log.debug("rollback failed", exc_info=True)
                        raise
                return result

            try:
                return await self.run(what, once)
            except AdapterError as exc:
                code = error_code(exc.__cause__) if exc.__cause__ is not None else None
                if code in _TRANSIENT and attempt < _WRITE_ATTEMPTS - 1:
                    await asyncio.sleep(0.002 * 2**attempt)  # let the other transaction go
                    continue
                raise
        raise AssertionError("unreachable")

    async def fetch(self, what: str, sql: str, args: Sequence[object] = ()) -> list[Row]:
        """Rows of a read-only statement (retried once on a dead connection)."""

        async def work(conn: Connection) -> list[Row]:
            async with conn.cursor() as cur:
                await cur.execute(sql, args)
                return list(await cur.fetchall())

        return await self.run(what, work, retry=True)

    async def execute(self, what: str, sql: str, args: Sequence[object] = ()) -> int:
        """One writing statement on its own (autocommit); the rows it changed."""

        async def work(conn: Connection) -> int:
            async with conn.cursor() as cur:
                return int(await cur.execute(sql, args))

        return await self.run(what, work)

    @property
    def pool_size(self) -> int:
        """Connections open or being opened (for tests)."""
        return self._pool.size


async def _close(conn: Connection) -> None:
    await conn.ensure_closed()
