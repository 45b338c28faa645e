"""The connections one backend shares: a pool for statements and one LISTEN connection.

Every statement runs on a pooled connection (``_pool.Pool``) through ``Database.run``: a
connection whose statement was cancelled or failed in transit is terminated, never put
back; after a connection failure the idle ones are dropped too (after a server restart
they are all dead), and reads are retried once on a fresh connection. Writes are not
retried (whether a lost ``COMMIT`` applied is unknown; the engine's compare-and-set makes
its own retry safe), except when the statement was provably never sent.

Sessions run with generic plans (no planning per statement) and ``enable_seqscan`` off:
every statement has an index, and a plan made while a table was small must not stay a
sequential scan where nothing (autovacuum's ANALYZE) invalidates it.

The LISTEN connection receives every notification of the installation on one channel
(payload ``<kind>:<name>``) and fires the matching ``Signal``. Notifications from this
process's own connections are ignored: its writes fire their signals directly. The
connection registers the process in the ``listeners`` table and renews the row every
``listen_check_interval`` (which is also its ping: a silently dead connection is
replaced); writers NOTIFY only while another process is registered, so a process alone
pays nothing for notifications. Whenever the listener (re)connects, every signal fires so
that waiters read what they may have missed, and for half a second waiters keep polling
quickly (a write whose statement started before the registration did not notify). While
the listener is down, waiters poll every ``poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlsplit

import asyncpg

from ..._errors import AdapterError
from ..._kit._signal import Signal
from ._errors import is_connection_error, translate, translate_connecting
from ._options import PostgresOptions, Tables
from ._pool import Pool

__all__ = ["Connection", "Database"]

T = TypeVar("T")
if TYPE_CHECKING:  # the driver's classes are generic only in its type stubs
    Connection: TypeAlias = asyncpg.Connection[Any]
else:
    Connection = asyncpg.Connection

log = logging.getLogger("conveyor.adapters.postgres")

_SERVER_SETTINGS = {
    # The stores rely on READ COMMITTED re-checks (compare-and-set, per-topic counters).
    "default_transaction_isolation": "read committed",
    "application_name": "conveyor",
    # Every statement is prepared and parameterised, and its generic plan is as good as a
    # custom one (index lookups by key): planning the batch write each time cost more
    # than executing it (0.6 vs 0.35 ms).
    "plan_cache_mode": "force_generic_plan",
    # Every statement has an index to use (tests check it). A plan made while a table was
    # small would otherwise scan it sequentially for as long as the connection lives
    # unless an ANALYZE invalidates it (never, where autovacuum is off).
    "enable_seqscan": "off",
    # A disabled plan node costs 1e10, which would set off JIT compilation (tens of ms)
    # for statements that run in a tenth of a millisecond.
    "jit": "off",
}
_LONG_WAIT = 60.0
"""Longest wait for a notification while the listener is up (a last-resort re-check)."""
_WARM_UP = 0.5
"""Seconds after (re)joining the listeners during which waiters still poll, quickly: a
write whose statement began before our registration may not have notified us."""
_WARM_POLL = 0.05


class Database:
    """A pool plus the listener, shared by the adapters of one backend.

    Open with ``await Database.open(url_or_dsn, options)``; ``close()`` ends both.
    """

    def __init__(self, dsn: str, options: PostgresOptions) -> None:
        self.dsn = dsn
        self.options = options
        self.tables: Tables = Tables(options.schema, options.table_prefix)
        self.member_id: str = uuid.uuid4().hex
        """This process's row in the ``listeners`` table (while its listener is up)."""
        t = self.tables
        self._listener_ttl = max(30.0, 6 * options.listen_check_interval)
        self._register_sql = (
            f"INSERT INTO {t.listeners} (id, expires_at) "
            "VALUES ($1, now() + $2 * interval '1 second') "
            "ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at"
        )
        self.others_listen_sql: str = (
            f"EXISTS (SELECT 1 FROM {t.listeners} WHERE id <> $_ AND expires_at > now())"
        )
        """SQL condition (``$_`` is this process's ``member_id``): another process listens."""
        self._warm_until = 0.0
        # The URL's own server settings (application_name=...) win over conveyor's.
        self._from_url = {key for key, _ in parse_qsl(urlsplit(dsn).query)}
        self._settings = {k: v for k, v in _SERVER_SETTINGS.items() if k not in self._from_url}
        self._pool = Pool(self._new_pooled, options.pool_max)
        self._signals: dict[str, Signal] = {}
        self._own_pids: set[int] = set()
        self._listener: asyncio.Task[None] | None = None
        self._listening = False
        self._ready = asyncio.Event()
        self._closed = False
        self.notifications: int = 0
        """How many notifications the listener received (for tests and metrics)."""
        self.listener_connections: int = 0
        """How many times the listener connected (more than one after a reconnect)."""
        self.listener_pid: int | None = None
        """The server process ID of the LISTEN connection, while it is up."""

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, dsn: str, options: PostgresOptions) -> Database:
        """Connect (at least once, so a bad URL fails here) and start the listener."""
        db = cls(dsn, options)
        try:
            await db._pool.fill(max(1, min(options.pool_min, options.pool_max)))
        except AdapterError:
            raise  # from connect(): translated (and scrubbed) already
        except Exception as exc:
            raise translate(exc, "connecting") from exc
        db._listener = asyncio.get_running_loop().create_task(
            db._listen(), name="conveyor-postgres-listener"
        )
        return db

    async def _new_pooled(self) -> asyncpg.Connection[Any]:
        conn = await self.connect()
        self._track(conn)
        return conn

    async def close(self) -> None:
        """Stop the listener and close every pooled connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.wait({self._listener})
        self._fire_all()
        with contextlib.suppress(Exception):  # else the row expires
            conn = await self._pool.acquire(1.0)
            try:
                await asyncio.wait_for(
                    conn.execute(
                        f"DELETE FROM {self.tables.listeners} WHERE id = $1", self.member_id
                    ),
                    2.0,
                )
            except BaseException:
                self._pool.release(conn, broken=True)
                raise
            self._pool.release(conn)
        await self._pool.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def connect(self, **settings: str) -> asyncpg.Connection[Any]:
        """A new connection outside the pool (the caller closes it)."""
        try:
            return await asyncpg.connect(
                self.dsn,
                timeout=self.options.connect_timeout,
                server_settings={
                    **self._settings,
                    **{k: v for k, v in settings.items() if k not in self._from_url},
                },
            )
        except Exception as exc:
            error, cause = translate_connecting(exc, self.dsn)
            raise error from cause

    # ------------------------------------------------------------------ statements

    @asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[Connection]:
        """A pooled connection for one unit of work (translates errors, never reuses a
        connection whose work was interrupted)."""
        conn = await self._acquire(what)
        try:
            yield conn
        except BaseException as exc:
            self._release_failed(conn, exc)
            raise
        self._pool.release(conn)

    def _release_failed(self, conn: Connection, exc: BaseException) -> None:
        broken = _breaks(exc)
        self._pool.release(conn, broken=broken)
        if broken and is_connection_error(exc):
            # The server went away or restarted: the idle connections are most likely
            # dead too, and finding out one statement at a time fails that many.
            self._pool.drop_idle()

    async def _acquire(self, what: str) -> asyncpg.Connection[Any]:
        if self._closed:
            raise AdapterError(f"PostgreSQL backend is closed (while {what})")
        try:
            return await self._pool.acquire(self.options.connect_timeout)
        except AdapterError:
            raise
        except Exception as exc:
            raise translate(exc, what) from exc

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
                if attempt == 0 and ((retry and is_connection_error(exc)) or _never_sent(exc)):
                    continue
                raise translate(exc, what) from exc
            self._pool.release(conn)
            return result
        raise AssertionError("unreachable")

    async def fetch(self, what: str, sql: str, *args: object) -> list[asyncpg.Record]:
        """Rows of a read-only statement (retried once on a dead connection)."""

        async def work(conn: Connection) -> list[asyncpg.Record]:
            return await conn.fetch(sql, *args)

        return await self.run(what, work, retry=True)

    async def fetchrow(self, what: str, sql: str, *args: object) -> asyncpg.Record | None:
        """The first row of a read-only statement (retried once on a dead connection)."""

        async def work(conn: Connection) -> asyncpg.Record | None:
            return await conn.fetchrow(sql, *args)

        return await self.run(what, work, retry=True)

    async def write(self, what: str, sql: str, *args: object) -> list[asyncpg.Record]:
        """Rows of one writing statement in its own transaction (never retried)."""

        async def work(conn: Connection) -> list[asyncpg.Record]:
            return await conn.fetch(sql, *args)

        return await self.run(what, work)

    # ------------------------------------------------------------------ notifications

    def signal(self, key: str) -> Signal:
        """The signal fired by notifications with payload ``key`` (and by ``fire(key)``)."""
        signal = self._signals.get(key)
        if signal is None:
            signal = self._signals[key] = Signal()
        return signal

    def fire(self, key: str) -> None:
        """Fire ``key``'s signal in this process (a write's own waiters need no round trip)."""
        signal = self._signals.get(key)
        if signal is not None:
            signal.fire()

    @property
    def listening(self) -> bool:
        """Whether notifications can be relied on: the LISTEN connection is up and was
        registered long enough ago that every write since notifies us."""
        return self._listening and time.monotonic() >= self._warm_until

    def wait_timeout(self, poll_interval: float | None = None) -> float:
        """How long a waiter may wait for a signal before looking again."""
        if self._listening:
            return _LONG_WAIT if time.monotonic() >= self._warm_until else _WARM_POLL
        return poll_interval if poll_interval is not None else self.options.poll_interval

    async def wait_listening(self, timeout: float) -> bool:
        """Wait until notifications can be relied on (tests); returns whether they can."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self._listening:
                    self._ready.clear()
                    await self._ready.wait()
                await asyncio.sleep(max(0.0, self._warm_until - time.monotonic()))
        return self.listening

    def _fire_all(self) -> None:
        for signal in list(self._signals.values()):
            signal.fire()

    def _track(self, conn: Connection) -> None:
        """Remember a pooled connection's server process while it lives: notifications it
        sends come back to the listener, but its writes already fired their signals here."""
        pid = conn.get_server_pid()
        self._own_pids.add(pid)
        conn.add_termination_listener(_discarder(self._own_pids, pid))

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self.notifications += 1
        if pid in self._own_pids:
            return  # an echo of this process's own write (fired locally already)
        signal = self._signals.get(str(payload))
        if signal is not None:
            signal.fire()

    async def _listen(self) -> None:
        """Keep one LISTEN connection up until closed (see the module docstring)."""
        failures = 0
        while True:
            conn: Connection | None = None
            try:
                conn = await self.connect(application_name="conveyor-listener")
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(self.tables.channel, self._on_notify)
                await conn.execute(self._register_sql, self.member_id, self._listener_ttl)
                self._warm_until = time.monotonic() + _WARM_UP
                self.listener_pid = conn.get_server_pid()
                self.listener_connections += 1
                self._listening = True
                self._ready.set()
                failures = 0
                self._fire_all()  # anything sent while we were not listening
                await self._watch(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("LISTEN connection failed (%s): polling meanwhile", exc)
            finally:
                self._listening = False
                self.listener_pid = None
                if conn is not None:
                    conn.terminate()
                self._fire_all()  # waiters switch to polling
            await asyncio.sleep(min(2.0, 0.05 * 2**failures) * random.uniform(0.5, 1.0))

    async def _watch(self, conn: Connection, lost: asyncio.Event) -> None:
        """Return when the connection is lost or stops answering pings."""
        interval = self.options.listen_check_interval
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await lost.wait()
                    return
            try:
                async with asyncio.timeout(max(1.0, interval)):
                    # The ping renews our registration as a listener.
                    await conn.execute(self._register_sql, self.member_id, self._listener_ttl)
            except asyncio.CancelledError:
                raise
            except Exception:
                return


def _never_sent(exc: BaseException) -> bool:
    """A connection the server closed while it sat idle fails the next statement before
    sending it (asyncpg only then sees the error message): safe to retry, writes too."""
    return isinstance(exc, asyncpg.InternalClientError) and "cannot switch" in str(exc)


def _breaks(exc: BaseException) -> bool:
    """Whether a connection whose work raised ``exc`` must not be reused: cancelled
    mid-statement, broken, or anything but an error the server reported for a statement."""
    return not isinstance(exc, (asyncpg.PostgresError, AdapterError)) or is_connection_error(exc)


def _discarder(pids: set[int], pid: int) -> Callable[[object], None]:
    def discard(_: object) -> None:
        pids.discard(pid)

    return discard


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    def set_event(_: object) -> None:
        event.set()

    return set_event
