"""``RedisClient``: the one door of the Redis adapters to redis-py, and its errors as conveyor's.

The adapters send raw commands (``execute_command``) through this class, never redis-py's
typed helpers, so they see the replies redis-py's RESP2 callbacks make (lists, ``bytes``)
and nothing else; redis-py is reached through the small ``Protocol``s below, so the
adapters' public types are complete. Its errors become ``AdapterUnavailable`` (the server
cannot be reached, the connection died, a reply timed out: worth a retry) or
``AdapterError`` (everything else), their messages scrubbed of the URL's secrets.

redis-py's own retries are off (``Retry(NoBackoff(), 0)``): a send whose reply was lost
must not be sent again behind the caller's back, and the callers (the role scheduler's
rounds, the engine's error backoff) retry anyway. Blocking reads (``XREADGROUP BLOCK``,
``XREAD BLOCK``) each run on a connection of their own (``BlockingConnection``), so a
reader waiting for events never holds one of the pool's.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, TypeVar, cast

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..._errors import AdapterError, AdapterUnavailable
from ..._urls import redact, scrub
from ._options import RedisOptions, split_url

__all__ = ["BlockingConnection", "RedisClient", "Script", "open_client", "translate"]

T = TypeVar("T")


class _Pipeline(Protocol):
    def execute_command(self, *args: object) -> object: ...

    async def execute(self, raise_on_error: bool = True) -> list[Any]: ...

    async def reset(self) -> None: ...


class _Redis(Protocol):
    async def execute_command(self, *args: object) -> Any: ...

    def pipeline(self, transaction: bool = True) -> _Pipeline: ...

    async def aclose(self) -> None: ...


async def _guarded(call: Awaitable[T]) -> T:
    """Await a redis-py call so that a cancellation is never lost.

    redis-py 8 can swallow a cancellation that arrives while a command is in flight (the
    command then completes and the caller goes on as if never cancelled: a loop told to
    stop would run forever). The call runs as a task of its own; a cancelled caller
    raises ``CancelledError`` at once and the call is cancelled too (it may still finish
    by itself).
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_retrieve)
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a call abandoned by a cancelled caller: nobody wants its outcome


def translate(exc: BaseException, what: str, url: str) -> AdapterError:
    """The conveyor error for a redis-py failure while doing ``what`` (chain it as the cause)."""
    if isinstance(exc, AdapterError):
        return exc
    text = scrub(f"{type(exc).__name__}: {exc}", url)
    unavailable = (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.BusyLoadingError,
        OSError,
        TimeoutError,
    )
    if isinstance(exc, unavailable):
        return AdapterUnavailable(f"Redis unavailable while {what} ({redact(url)}): {text}")
    return AdapterError(f"Redis failed while {what}: {text}")


class Script:
    """A Lua script sent by its SHA1 (``EVALSHA``), loaded again after ``NOSCRIPT`` (a
    restarted server has an empty script cache)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source: str = source
        self.sha: str = hashlib.sha1(source.encode()).hexdigest()


def _client(url: str, options: RedisOptions, *, single: bool, read_timeout: float) -> _Redis:
    kwargs: dict[str, Any] = {
        "decode_responses": False,
        "socket_connect_timeout": options.connect_timeout,
        "socket_timeout": read_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    if single:
        client = redis.asyncio.Redis.from_url(url, single_connection_client=True, **kwargs)
    else:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url,
            max_connections=options.max_connections,
            timeout=options.command_timeout,
            **kwargs,
        )
        client = redis.asyncio.Redis.from_pool(pool)  # closes the pool with the client
    return cast(_Redis, client)


class RedisClient:
    """A pool of connections to one Redis database, for the adapters' commands.

    ``url`` is the connection URL (without conveyor's options); ``display_url`` the URL as
    the user gave it, for messages (always shown redacted).
    """

    def __init__(self, url: str, options: RedisOptions, *, display_url: str = "") -> None:
        self.url: str = url
        self.display_url: str = display_url or url
        self.options: RedisOptions = options
        self._redis = _client(url, options, single=False, read_timeout=options.command_timeout)
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisClient({redact(self.display_url)!r})"

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    async def command(self, what: str, *args: object) -> Any:
        """Send one command; its reply. Raises ``AdapterError``/``AdapterUnavailable``."""
        try:
            return await _guarded(self._redis.execute_command(*args))
        except (TimeoutError, Exception) as exc:
            raise translate(exc, what, self.display_url) from exc

    async def run(
        self, what: str, script: Script, keys: Sequence[str], args: Sequence[object]
    ) -> Any:
        """Run ``script`` with ``keys`` and ``args``; its reply."""
        return await _run_script(self._redis, what, script, keys, args, self.display_url)

    async def pipeline(
        self,
        what: str,
        commands: Sequence[Sequence[object]],
        scripts: Sequence[Script] = (),
    ) -> list[Any]:
        """Send several commands in one round trip (not a transaction): their replies, in
        order; a command that failed has its ``AdapterError`` in its place (the driver's
        error as its cause). Raises if the round trip itself failed.

        Commands may be ``EVALSHA`` of ``scripts``: if the server does not know one
        (``NOSCRIPT``: it restarted, or its cache was flushed), every script is loaded and
        the whole pipeline sent once more, so its commands must be safe to repeat.
        """
        if not commands:
            return []
        replies = await self._pipeline(what, commands)
        if scripts and any(_no_script(r) for r in replies):
            for script in scripts:
                await self.command(what, "SCRIPT", "LOAD", script.source)
            replies = await self._pipeline(what, commands)
        return replies

    async def _pipeline(self, what: str, commands: Sequence[Sequence[object]]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        try:
            for command in commands:
                pipe.execute_command(*command)
            replies = await _guarded(pipe.execute(raise_on_error=False))
        except (TimeoutError, Exception) as exc:
            raise translate(exc, what, self.display_url) from exc
        finally:
            await _guarded(pipe.reset())
        out: list[Any] = []
        for reply in replies:
            if isinstance(reply, Exception):
                error = translate(reply, what, self.display_url)
                error.__cause__ = reply
                out.append(error)
            else:
                out.append(reply)
        return out

    def blocking(self, read_block: float | None = None) -> BlockingConnection:
        """A connection of its own for blocking reads of at most ``read_block`` seconds."""
        block = self.options.read_block if read_block is None else read_block
        return BlockingConnection(self, block)

    async def delete_prefix(self, pattern: str) -> int:
        """Delete every key matching ``pattern`` (``SCAN`` + ``DEL``); how many."""
        deleted = 0
        cursor: Any = 0
        while True:
            cursor, keys = await self.command(
                "deleting keys", "SCAN", cursor, "MATCH", pattern, "COUNT", 500
            )
            if keys:
                deleted += int(await self.command("deleting keys", "DEL", *keys))
            if int(cursor) == 0:
                return deleted

    async def close(self) -> None:
        """Close the pool's connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._redis.aclose()
        except Exception:  # closing sockets that already failed
            pass


class BlockingConnection:
    """One connection for one reader's blocking reads (made at the first read, made again
    after a failure). A cancelled read leaves it usable: redis-py drops a connection whose
    reply was not read."""

    def __init__(self, client: RedisClient, block: float) -> None:
        self._client = client
        self.block: float = block
        self._redis: _Redis | None = None

    def _connection(self) -> _Redis:
        if self._redis is None:
            options = self._client.options
            self._redis = _client(
                self._client.url,
                options,
                single=True,
                read_timeout=self.block + options.command_timeout,
            )
        return self._redis

    async def command(self, what: str, *args: object) -> Any:
        """Send one (blocking) command on this connection; its reply."""
        try:
            return await _guarded(self._connection().execute_command(*args))
        except asyncio.CancelledError:
            self._abandon()  # its read may still be running: a later command needs another
            raise
        except (TimeoutError, Exception) as exc:
            await self.close()
            raise translate(exc, what, self._client.display_url) from exc

    def _abandon(self) -> None:
        conn, self._redis = self._redis, None
        if conn is not None:
            closing = asyncio.ensure_future(conn.aclose())
            closing.add_done_callback(_retrieve)

    async def close(self) -> None:
        """Close the connection (a later command opens another). Idempotent."""
        conn, self._redis = self._redis, None
        if conn is not None:
            try:
                await conn.aclose()
            except Exception:
                pass


def _no_script(reply: object) -> bool:
    """Whether a pipeline's reply is the server's "no such script" error."""
    return isinstance(reply, AdapterError) and isinstance(
        reply.__cause__, redis.exceptions.NoScriptError
    )


async def _run_script(
    conn: _Redis, what: str, script: Script, keys: Sequence[str], args: Sequence[object], url: str
) -> Any:
    try:
        try:
            return await _guarded(
                conn.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            )
        except redis.exceptions.NoScriptError:
            return await _guarded(
                conn.execute_command("EVAL", script.source, len(keys), *keys, *args)
            )
    except (TimeoutError, Exception) as exc:
        raise translate(exc, what, url) from exc


def open_client(url: str, **options: Any) -> RedisClient:
    """A ``RedisClient`` for ``url`` (``redis://``, ``rediss://`` or ``unix://``), with the
    options of its query string and ``options`` (keywords win; see ``RedisOptions``).

    Connects lazily (at the first command). Raises ``AdapterError`` for a URL that is not
    a Redis URL or an option out of range, ``TypeError`` for an unknown keyword.
    """
    connect, settings = split_url(url, dict(options))
    return RedisClient(connect, settings, display_url=url)
