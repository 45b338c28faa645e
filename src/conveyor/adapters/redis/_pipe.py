"""``Pipe``: one connection that carries the Redis client's pipelined commands.

redis-py's command path (packing each argument through its encoder, a pool checkout, a
retry wrapper and a timeout context per reply, its observability hooks) costs more CPU
than the adapters' own work: a profile of everything-on-Redis put a third of the
process in it. The pipelined commands therefore go over a connection of this module's:
an ``asyncio.Protocol`` whose bytes are parsed by hiredis (redis-py's own fast parser,
used directly), the commands of a batch packed into one write, the replies matched to
the batches in order. It speaks RESP3, as redis-py's own connections do, and the replies
pass through the callbacks of a redis-py client by command name (``callbacks``), so the
adapters see the shapes ``execute_command`` gives (redis-py 8 and later speak RESP3 and
convert to its RESP2 shapes: hence ``redis>=8``, ``hiredis>=3`` for RESP3 parsing).

A connection is made at the first batch (``HELLO 3``, with ``AUTH`` and ``SELECT`` from
the URL) and made again after it fails. A failure of the connection (closed, unreadable
reply, no reply within the command timeout) fails every batch in flight on it with
``redis.exceptions.ConnectionError``/``TimeoutError`` and closes it: replies can never be
matched to the wrong commands.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.exceptions
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

__all__ = ["Pipe", "pack"]


def _arg(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool) or value is None:
        raise redis.exceptions.DataError(f"invalid Redis argument: {value!r}")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, memoryview):
        return value.tobytes()
    raise redis.exceptions.DataError(f"invalid Redis argument of type {type(value).__name__}")


def _pack_slowly(commands: Sequence[Sequence[object]]) -> bytes:
    """``pack`` in Python: the same bytes, and the argument that cannot be sent named."""
    out: list[bytes] = []
    append = out.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for value in command:
            raw = value if type(value) is bytes else _arg(value)
            append(b"$%d\r\n" % len(raw))
            append(raw)  # not copied into a formatted string: payloads can be large
            append(b"\r\n")
    return b"".join(out)


def pack(commands: Sequence[Sequence[object]]) -> bytes:
    """The commands in the RESP wire format, one after the other.

    Packed by hiredis's C packer (2.6 times as fast as the same loop in Python, which a
    profile of everything-on-Redis showed at a tenth of the process); an argument it
    refuses (``None``, a ``bool``, another type) is named by the Python packer's
    ``DataError``.
    """
    pack_command: Any = hiredis.pack_command  # its stub types a 1-tuple
    try:
        return b"".join([pack_command(c if type(c) is tuple else tuple(c)) for c in commands])
    except TypeError:
        return _pack_slowly(commands)  # raises DataError for the argument it refuses


def _error(reply: hiredis.ReplyError) -> redis.exceptions.ResponseError:
    text = str(reply)
    if text.startswith("NOSCRIPT"):
        return redis.exceptions.NoScriptError(text)
    return redis.exceptions.ResponseError(text)


class _Batch:
    __slots__ = ("future", "replies", "size")

    def __init__(self, size: int, future: asyncio.Future[list[Any]]) -> None:
        self.size = size
        self.replies: list[Any] = []
        self.future = future


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[_Batch] = deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while self.waiting:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(redis.exceptions.ConnectionError(f"unreadable reply: {exc}"))
                return
            if reply is False:
                return
            batch = self.waiting[0]
            batch.replies.append(_error(reply) if isinstance(reply, hiredis.ReplyError) else reply)
            if len(batch.replies) == batch.size:
                self.waiting.popleft()
                if not batch.future.done():
                    batch.future.set_result(batch.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.exceptions.ConnectionError(f"Connection closed by server ({exc})"))

    def fail(self, error: Exception) -> None:
        self.closed = True
        while self.waiting:
            batch = self.waiting.popleft()
            if not batch.future.done():
                batch.future.set_exception(error)
                batch.future.exception()  # retrieved: its caller may have stopped waiting
        if self.transport is not None:
            self.transport.close()


class Pipe:
    """Pipelined batches of commands on one connection to ``url``'s server (see above)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        command_timeout: float,
        callbacks: Any,
    ) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._callbacks = callbacks
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock = asyncio.Lock()

    async def send(self, commands: Sequence[Sequence[object]]) -> list[Any]:
        """Send ``commands`` in one write; their replies in order (a command's error reply
        as a ``ResponseError`` in its place). Raises redis-py's ``ConnectionError`` or
        ``TimeoutError`` when the connection fails, ``DataError`` for a bad argument."""
        data = pack(commands)
        protocol = await self._connection()
        replies = await self._round_trip(protocol, data, len(commands))
        callbacks = self._callbacks
        out: list[Any] = []
        for command, reply in zip(commands, replies, strict=True):
            name = command[0]
            callback = callbacks.get(name) if not isinstance(reply, Exception) else None
            out.append(reply if callback is None else callback(reply))
        return out

    async def _round_trip(self, protocol: _Protocol, data: bytes, size: int) -> list[Any]:
        if protocol.closed or protocol.transport is None:  # lost since it was handed out
            raise redis.exceptions.ConnectionError("Connection closed by server")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        protocol.waiting.append(_Batch(size, future))
        protocol.transport.write(data)
        try:
            async with asyncio.timeout(self._command_timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            protocol.fail(redis.exceptions.TimeoutError("Timeout reading from Redis"))
            raise redis.exceptions.TimeoutError("Timeout reading from Redis") from None

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        async with self._connecting:
            protocol = self._protocol
            if protocol is None or protocol.closed:
                protocol = await self._connect()
                self._protocol = protocol
            return protocol

    async def _connect(self) -> _Protocol:
        settings: dict[str, Any] = dict(parse_url(self._url))
        loop = asyncio.get_running_loop()
        kind = settings.get("connection_class")
        try:
            async with asyncio.timeout(self._connect_timeout):
                if kind is UnixDomainSocketConnection:
                    _, protocol = await loop.create_unix_connection(_Protocol, settings["path"])
                else:
                    context = ssl.create_default_context() if kind is SSLConnection else None
                    _, protocol = await loop.create_connection(
                        _Protocol,
                        settings.get("host", "localhost"),
                        settings.get("port", 6379),
                        ssl=context,
                    )
        except TimeoutError:
            raise redis.exceptions.TimeoutError("Timeout connecting to Redis") from None
        except OSError as exc:
            raise redis.exceptions.ConnectionError(f"Error connecting to Redis: {exc}") from None
        greeting: tuple[object, ...] = ("HELLO", 3)
        password = settings.get("password")
        if password is not None:
            greeting += ("AUTH", settings.get("username") or "default", password)
        hello = [greeting]
        db = int(settings.get("db") or 0)
        if db:
            hello.append(("SELECT", db))
        try:
            replies = await self._round_trip(protocol, pack(hello), len(hello))
        except BaseException:
            protocol.fail(redis.exceptions.ConnectionError("connection set-up failed"))
            raise
        for reply in replies:
            if isinstance(reply, Exception):
                protocol.fail(redis.exceptions.ConnectionError("connection set-up failed"))
                if "WRONGPASS" in str(reply) or "AUTH" in str(reply):
                    raise redis.exceptions.AuthenticationError(str(reply))
                raise reply
        return protocol

    def close(self) -> None:
        """Close the connection (batches in flight fail). Idempotent."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and not protocol.closed:
            protocol.fail(redis.exceptions.ConnectionError("Redis client closed"))
