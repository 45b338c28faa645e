"""``RedisClient``: the Redis adapters' one way to the server, and its errors as conveyor's.

The adapters send raw commands through this class, so they see the replies redis-py's
reply callbacks make (lists, ``bytes``) and nothing else. Its errors become
``AdapterUnavailable`` (the server cannot be reached, the connection died, a reply timed
out: worth a retry) or ``AdapterError`` (everything else), their messages scrubbed of the
URL's secrets.

Single commands and scripts are pipelined (``RedisClient.command``, ``run``): the ones
made while a batch is in flight go to the server together in the next, one round trip, on
the client's one pipelining connection (``_pipe.Pipe``: hiredis-parsed, redis-py's reply
callbacks applied; measured cheaper than redis-py's own pool, pipeline and connection
objects, which the adapters used before). Blocking reads (``XREADGROUP BLOCK``, ``XREAD
BLOCK``) each run on a ``Pipe`` of their own (``BlockingConnection``), so a reader waiting
for events never holds up the pipelined commands.

Nothing is sent again behind the caller's back: a send whose reply was lost may have run,
and the callers (the role scheduler's rounds, the engine's error backoff) retry anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any, Protocol, cast

import redis.asyncio
import redis.exceptions

from ..._errors import AdapterError, AdapterUnavailable
from ..._urls import redact, scrub
from ._options import RedisOptions, split_url
from ._pipe import Pipe

__all__ = ["BlockingConnection", "RedisClient", "Script", "open_client", "translate"]


class _Redis(Protocol):
    response_callbacks: Any


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


def _callbacks(url: str) -> Any:
    """redis-py's reply callbacks by command name, as a client of its for ``url`` applies
    them (the client never connects)."""
    client = cast(_Redis, redis.asyncio.Redis.from_url(url, decode_responses=False))
    return client.response_callbacks


class RedisClient:
    """A pool of connections to one Redis database, for the adapters' commands.

    ``url`` is the connection URL (without conveyor's options); ``display_url`` the URL as
    the user gave it, for messages (always shown redacted).
    """

    def __init__(self, url: str, options: RedisOptions, *, display_url: str = "") -> None:
        self.url: str = url
        self.display_url: str = display_url or url
        self.options: RedisOptions = options
        self.callbacks: Any = _callbacks(url)
        """redis-py's reply callbacks, by command name (see ``_pipe``)."""
        self._pipe = Pipe(
            url,
            connect_timeout=options.connect_timeout,
            command_timeout=options.command_timeout,
            callbacks=self.callbacks,
        )
        self._queue: list[_Queued] = []  # commands waiting for the batch in flight
        self._senders: set[asyncio.Task[None]] = set()  # batches in flight
        self._loaded: set[str] = set()  # scripts this client ran (sent by SHA from then on)
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisClient({redact(self.display_url)!r})"

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    async def command(self, what: str, *args: object) -> Any:
        """Send one command; its reply. Raises ``AdapterError``/``AdapterUnavailable``.

        Commands are pipelined: those made while batches are in flight go together in the
        next one (one round trip, in the order they were made; a script the server forgot
        since this client first ran it is run again after the batch), at most
        ``_IN_FLIGHT`` batches in flight per client. A cancelled caller stops waiting; its
        command may still run.
        """
        return await self._submit(_Queued(what, args, None))

    async def run(
        self, what: str, script: Script, keys: Sequence[str], args: Sequence[object]
    ) -> Any:
        """Run ``script`` with ``keys`` and ``args``; its reply (pipelined as ``command``)."""
        return await self._submit(
            _Queued(what, ("EVALSHA", script.sha, len(keys), *keys, *args), script)
        )

    async def _submit(self, queued: _Queued) -> Any:
        if self._closed:
            raise AdapterError(f"Redis client is closed ({redact(self.display_url)})")
        self._queue.append(queued)
        if len(self._senders) < _IN_FLIGHT:
            sender = asyncio.get_running_loop().create_task(
                self._send_queued(), name="conveyor-redis-pipeline"
            )
            self._senders.add(sender)
        return await queued.reply

    async def _send_queued(self) -> None:
        """Send the queued commands, a batch at a time, until none is left; then leave
        ``_senders`` in the same step (so a command queued later starts a sender)."""
        try:
            while self._queue:
                batch = [q for q in self._queue if not q.reply.done()]  # cancelled callers
                self._queue = []
                if batch:
                    await self._send_batch(batch)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._senders.discard(task)

    def _args(self, queued: _Queued) -> tuple[object, ...]:
        """A script this client has not run yet goes as ``EVAL`` (which loads it), so that
        a batch needs no ``NOSCRIPT`` retry, which would run it after the commands behind
        it; one the server forgot (it restarted) is retried so."""
        script = queued.script
        return queued.args if script is None or script.sha in self._loaded else queued.as_eval()

    def _ran(self, queued: _Queued) -> None:
        if queued.script is not None:
            self._loaded.add(queued.script.sha)

    async def _send_batch(self, batch: list[_Queued]) -> None:
        try:
            replies = await self._pipeline_replies([self._args(q) for q in batch])
            missing = [
                i
                for i, r in enumerate(replies)
                if batch[i].script is not None and isinstance(r, redis.exceptions.NoScriptError)
            ]
            if missing:  # a restarted server: the scripts as source (which loads them)
                again = await self._pipeline_replies([batch[i].as_eval() for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except (TimeoutError, Exception) as exc:
            for queued in batch:
                queued.fail(translate(exc, queued.what, self.display_url), exc)
            return
        for queued, reply in zip(batch, replies, strict=True):
            if isinstance(reply, Exception):
                queued.fail(translate(reply, queued.what, self.display_url), reply)
            else:
                self._ran(queued)
                queued.done(reply)

    async def _pipeline_replies(self, commands: Sequence[Sequence[object]]) -> list[Any]:
        return await self._pipe.send(commands)

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
        try:
            replies = await self._pipe.send(commands)
        except (TimeoutError, Exception) as exc:
            raise translate(exc, what, self.display_url) from exc
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
        """Close the pool's connections (commands still queued fail). Idempotent."""
        if self._closed:
            return
        self._closed = True
        senders = set(self._senders)
        for sender in senders:
            sender.cancel()
        if senders:
            await asyncio.wait(senders)
        queued, self._queue = self._queue, []
        for q in queued:
            q.fail(AdapterError(f"Redis client is closed ({redact(self.display_url)})"), None)
        self._pipe.close()


_IN_FLIGHT = 2
"""Batches of pipelined commands a client has in flight at most, one after the other on its
connection (replies come in order): fewer makes larger batches, more keeps the connection
busy while the server runs a large batch. With the receivers' reads on this connection, 2
beat 1 in 8 of 10 interleaved pairs (everything on Redis, 1 process; with one, a profile had
the event loop waiting in ``select`` a third of the time)."""


class _Queued:
    """A command waiting for its batch: what it does (for errors), its arguments, the
    script of an ``EVALSHA``, and the caller's future."""

    __slots__ = ("args", "reply", "script", "what")

    def __init__(self, what: str, args: tuple[object, ...], script: Script | None) -> None:
        self.what = what
        self.args = args
        self.script = script
        self.reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def as_eval(self) -> tuple[object, ...]:
        """The ``EVALSHA`` as ``EVAL`` of the script's source."""
        assert self.script is not None
        return ("EVAL", self.script.source, *self.args[2:])

    def done(self, reply: Any) -> None:
        if not self.reply.done():
            self.reply.set_result(reply)

    def fail(self, error: AdapterError, cause: BaseException | None) -> None:
        if cause is not None and error is not cause:
            error.__cause__ = cause
        if not self.reply.done():
            self.reply.set_exception(error)


class BlockingConnection:
    """One connection for one reader's blocking reads (made at the first read, made again
    after a failure or a cancelled read, whose reply may still come)."""

    def __init__(self, client: RedisClient, block: float) -> None:
        self._client = client
        self.block: float = block
        self._pipe: Pipe | None = None

    def _connection(self) -> Pipe:
        if self._pipe is None:
            client = self._client
            self._pipe = Pipe(
                client.url,
                connect_timeout=client.options.connect_timeout,
                command_timeout=self.block + client.options.command_timeout,
                callbacks=client.callbacks,
            )
        return self._pipe

    async def command(self, what: str, *args: object) -> Any:
        """Send one (blocking) command on this connection; its reply."""
        try:
            (reply,) = await self._connection().send([args])
        except asyncio.CancelledError:
            self._abandon()  # its reply may still come: a later command needs another
            raise
        except (TimeoutError, Exception) as exc:
            self._abandon()
            raise translate(exc, what, self._client.display_url) from exc
        if isinstance(reply, Exception):
            raise translate(reply, what, self._client.display_url) from reply
        return reply

    def _abandon(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    async def close(self) -> None:
        """Close the connection (a later command opens another). Idempotent."""
        self._abandon()


def _no_script(reply: object) -> bool:
    """Whether a pipeline's reply is the server's "no such script" error."""
    return isinstance(reply, AdapterError) and isinstance(
        reply.__cause__, redis.exceptions.NoScriptError
    )


def open_client(url: str, **options: Any) -> RedisClient:
    """A ``RedisClient`` for ``url`` (``redis://``, ``rediss://`` or ``unix://``), with the
    options of its query string and ``options`` (keywords win; see ``RedisOptions``).

    Connects lazily (at the first command). Raises ``AdapterError`` for a URL that is not
    a Redis URL or an option out of range, ``TypeError`` for an unknown keyword.
    """
    connect, settings = split_url(url, dict(options))
    return RedisClient(connect, settings, display_url=url)
