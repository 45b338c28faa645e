"""``StreamClient``: one connection to a RabbitMQ node over the stream protocol.

The adapter's own (an asyncio ``Protocol``, frames from ``_wire``), not a driver's: it
reads whole socket buffers and slices frames out of them, writes without waiting, and
hands deliveries and publish confirms to callbacks on the event loop, so a receiver's
chunk costs one parse and a publish one write. Requests are matched to their responses
by correlation ID and bounded by ``request_timeout``. A lost connection fails every
request waiting, every publish not yet confirmed, and tells each subscription
(``Subscription.lost``); the client is not reconnected (``RabbitConnection`` opens a new
one when asked next). Errors are conveyor's: ``AdapterUnavailable`` for a connection
that cannot be made or is gone or for a stream its node is (re)starting
(``STREAM_NOT_AVAILABLE``), ``AdapterError`` for any other refusal; neither quotes the
password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..._errors import AdapterError, AdapterUnavailable
from . import _wire as wire
from ._options import Endpoint, RabbitOptions
from ._wire import Chunk, Code, Key, Reader, describe

__all__ = ["Publisher", "StreamClient", "StreamMissing", "Subscription"]

log = logging.getLogger("conveyor.adapters.rabbitmq")

_KEY = struct.Struct(">HH")
_SIZE = struct.Struct(">I")
_ID = struct.Struct(">Q")
_ERROR = struct.Struct(">QH")
_MAX_IDS = 256
_FRAME_MAX = 1_048_576


class StreamMissing(AdapterError):
    """The node has no such stream (deleted behind the adapter's back, or never made)."""


class Subscription(Protocol):
    """What a client tells a subscriber (a receiver, a connector consumer)."""

    def deliver(self, chunk: Chunk) -> None:
        """A chunk arrived (called on the event loop; must not block)."""
        ...

    def lost(self, error: AdapterError) -> None:
        """The subscription ended: the connection is gone or the stream was deleted."""
        ...


@dataclass(slots=True)
class _Batch:
    future: asyncio.Future[None]
    remaining: int


@dataclass(slots=True)
class Publisher:
    """A publisher declared on the client for one stream (publishing IDs count from 1)."""

    id: int
    stream: str
    next_id: int = 1
    waiting: dict[int, _Batch] = field(default_factory=dict)


class _Wire(asyncio.Protocol):
    """Bytes in, frames out: slices whole frames out of what arrived."""

    def __init__(self, client: StreamClient) -> None:
        self._client = client
        self._rest = b""
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.resumed = asyncio.Event()
        self.resumed.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        view = memoryview(buf)
        end = len(buf)
        pos = 0
        handle = self._client._frame
        while end - pos >= 4:
            (size,) = _SIZE.unpack_from(buf, pos)
            if end - pos - 4 < size:
                break
            start = pos + 4
            pos = start + size
            try:
                handle(view[start:pos])
            except Exception as exc:  # one bad frame must not stop the connection's reading
                log.warning("RabbitMQ stream frame not understood: %r", exc)
        self._rest = buf[pos:] if pos < end else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._lost(exc)

    def pause_writing(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.resumed.set()


class StreamClient:
    """One authenticated stream-protocol connection (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, options: RabbitOptions) -> None:
        self.endpoint = endpoint
        self.options = options
        self.frame_max: int = _FRAME_MAX
        self._protocol = _Wire(self)
        self._corr = 0
        self._waiting: dict[int, asyncio.Future[memoryview]] = {}
        self._tune: asyncio.Future[tuple[int, int]] | None = None
        self._subscriptions: dict[int, Subscription] = {}
        self._publishers: dict[int, Publisher] = {}
        self._by_stream: dict[str, Publisher] = {}
        self._declaring: dict[str, asyncio.Future[Publisher]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._error: AdapterError | None = None
        self._ended = asyncio.Event()
        self._closed = False

    @classmethod
    async def open(cls, endpoint: Endpoint, options: RabbitOptions) -> StreamClient:
        """Connect, authenticate and open the virtual host. Raises ``AdapterUnavailable``
        if the node does not answer, ``AdapterError`` if it refuses the client."""
        client = cls(endpoint, options)
        loop = asyncio.get_running_loop()
        where = f"{endpoint.host}:{endpoint.port}"
        try:
            async with asyncio.timeout(options.connect_timeout):
                await loop.create_connection(lambda: client._protocol, endpoint.host, endpoint.port)
                await client._handshake()
        except TimeoutError:
            client._abort()
            raise AdapterUnavailable(
                f"RabbitMQ unavailable at {where}: no answer within {options.connect_timeout}s "
                "(is the rabbitmq_stream plugin enabled? rabbitmq-plugins enable rabbitmq_stream)"
            ) from None
        except OSError as exc:
            client._abort()
            raise AdapterUnavailable(
                f"RabbitMQ unavailable at {where}: {exc.strerror or exc!r} (is the "
                "rabbitmq_stream plugin enabled? rabbitmq-plugins enable rabbitmq_stream)"
            ) from None
        except BaseException:
            client._abort()
            raise
        return client

    async def _handshake(self) -> None:
        endpoint = self.endpoint
        loop = asyncio.get_running_loop()
        await self.request(
            lambda corr: wire.peer_properties_frame(
                corr, {"product": "conveyor", "connection_name": "conveyor"}
            ),
            "opening a connection",
        )
        _, reader = await self.request(wire.sasl_handshake_frame, "opening a connection")
        if "PLAIN" not in reader.strings():
            raise AdapterError("the RabbitMQ node does not offer PLAIN authentication")
        self._tune = loop.create_future()
        secret = b"\0" + endpoint.username.encode() + b"\0" + endpoint.password.encode()
        code, _ = await self.request(
            lambda corr: wire.sasl_authenticate_frame(corr, "PLAIN", secret),
            "authenticating",
            allow=(Code.AUTHENTICATION_FAILURE, Code.SASL_ERROR),
        )
        if code != Code.OK:
            raise AdapterError(
                f"RabbitMQ refused user {endpoint.username!r} at {endpoint.host}:"
                f"{endpoint.port} ({describe(code)}): check the URL's user and password"
            )
        server_max, server_beat = await self._tune
        self.frame_max = min(server_max, _FRAME_MAX) if server_max else _FRAME_MAX
        wanted = self.options.heartbeat
        beat = min(wanted, server_beat) if wanted and server_beat else 0
        self._write(wire.tune_frame(self.frame_max, beat))
        code, _ = await self.request(
            lambda corr: wire.open_frame(corr, endpoint.vhost),
            "opening the virtual host",
            allow=(Code.VIRTUAL_HOST_ACCESS_FAILURE,),
        )
        if code != Code.OK:
            raise AdapterError(
                f"RabbitMQ refused virtual host {endpoint.vhost!r} to user "
                f"{endpoint.username!r} ({describe(code)})"
            )
        if beat:
            self._heartbeat = loop.create_task(self._beat(beat), name="conveyor-rabbitmq-beat")

    async def _beat(self, period: int) -> None:
        while True:
            await asyncio.sleep(period / 2)
            if self._error is not None:
                return
            self._write(wire.heartbeat_frame())

    # ------------------------------------------------------------------ state

    @property
    def alive(self) -> bool:
        """Whether the connection is up (not lost, not closed)."""
        return self._error is None and not self._closed

    async def wait_lost(self) -> None:
        """Return once the connection has ended (lost or closed)."""
        await self._ended.wait()

    def check(self) -> None:
        """Raise the error that ended the connection, if it ended."""
        if self._error is not None:
            raise self._error

    def _write(self, data: bytes) -> None:
        self.check()
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            raise AdapterUnavailable("the RabbitMQ connection is closed")
        transport.write(data)

    async def drain(self) -> None:
        """Wait while the socket's write buffer is above its high-water mark."""
        if self._protocol.paused:
            await self._protocol.resumed.wait()
            self.check()

    # ------------------------------------------------------------------ requests

    async def request(
        self, build: Callable[[int], bytes], what: str, *, allow: Sequence[int] = ()
    ) -> tuple[int, Reader]:
        """Send the frame ``build(correlation ID)`` and wait for its response: its code
        and a reader after the code. A code other than OK (or one of ``allow``) raises
        ``AdapterError``."""
        self._corr = corr = self._corr + 1
        future: asyncio.Future[memoryview] = asyncio.get_running_loop().create_future()
        self._waiting[corr] = future
        try:
            self._write(build(corr))
            async with asyncio.timeout(self.options.request_timeout):
                body = await future
        except TimeoutError:
            raise AdapterUnavailable(
                f"RabbitMQ unavailable while {what}: no answer within "
                f"{self.options.request_timeout}s"
            ) from None
        finally:
            self._waiting.pop(corr, None)
        reader = Reader(body, 8)
        code = reader.u16()
        if code != Code.OK and code not in allow:
            kind: type[AdapterError] = AdapterError
            if code == Code.STREAM_DOES_NOT_EXIST:
                kind = StreamMissing
            elif code == Code.STREAM_NOT_AVAILABLE:  # its node is (re)starting: worth a retry
                kind = AdapterUnavailable
            raise kind(f"RabbitMQ refused {what} ({describe(code)})")
        return code, reader

    def send(self, data: bytes) -> None:
        """Write a frame that has no response (credit, store offset)."""
        self._write(data)

    # ------------------------------------------------------------------ subscriptions

    def subscription_id(self, subscriber: Subscription) -> int:
        """A free subscription ID, now ``subscriber``'s. Raises ``AdapterError`` when the
        connection has 256 already (the protocol's limit)."""
        for candidate in range(_MAX_IDS):
            if candidate not in self._subscriptions:
                self._subscriptions[candidate] = subscriber
                return candidate
        raise AdapterError("one RabbitMQ connection holds at most 256 subscriptions")

    def release_subscription(self, subscription_id: int) -> None:
        self._subscriptions.pop(subscription_id, None)

    # ------------------------------------------------------------------ publishing

    async def publisher(self, stream: str) -> Publisher:
        """The client's publisher of ``stream``, declared at first use."""
        known = self._by_stream.get(stream)
        if known is not None:
            return known
        pending = self._declaring.get(stream)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Publisher] = asyncio.get_running_loop().create_future()
        self._declaring[stream] = future
        try:
            free = next((i for i in range(_MAX_IDS) if i not in self._publishers), None)
            if free is None:
                raise AdapterError("one RabbitMQ connection publishes to at most 256 topics")
            publisher = self._publishers[free] = Publisher(free, stream)
            try:
                await self.request(
                    lambda corr: wire.declare_publisher_frame(corr, free, stream),
                    f"declaring a publisher of stream {stream!r}",
                )
            except BaseException:
                self._publishers.pop(free, None)
                raise
            self._by_stream[stream] = publisher
            future.set_result(publisher)
            return publisher
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: only waiters that shared it see it
            raise
        finally:
            self._declaring.pop(stream, None)

    def forget_publisher(self, stream: str) -> None:
        """Drop the publisher of ``stream`` (its stream was deleted)."""
        publisher = self._by_stream.pop(stream, None)
        if publisher is not None:
            self._publishers.pop(publisher.id, None)

    async def publish(self, stream: str, messages: Sequence[bytes]) -> None:
        """Publish ``messages`` in order and wait until the node confirms every one.

        Raises ``AdapterError`` if the node refuses one, ``AdapterUnavailable`` if the
        confirms do not come within ``request_timeout`` or the connection is lost (then
        some may have been written: the caller sends again, and the engine's version
        rule makes a copy harmless).
        """
        publisher = await self.publisher(stream)
        loop = asyncio.get_running_loop()
        batch = _Batch(loop.create_future(), len(messages))
        first = publisher.next_id
        frames = list(wire.publish_frames(publisher.id, first, messages, self.frame_max))
        publisher.next_id = first + len(messages)
        for publishing_id in range(first, first + len(messages)):
            publisher.waiting[publishing_id] = batch
        try:
            for data, _ in frames:
                self._write(data)
            await self.drain()
            async with asyncio.timeout(self.options.request_timeout):
                await batch.future
        except TimeoutError:
            raise AdapterUnavailable(
                f"RabbitMQ unavailable while publishing to {stream!r}: no confirm within "
                f"{self.options.request_timeout}s"
            ) from None
        finally:
            for publishing_id in range(first, first + len(messages)):
                publisher.waiting.pop(publishing_id, None)

    def _confirmed(self, body: memoryview) -> None:
        publisher = self._publishers.get(body[4])
        if publisher is None:
            return
        (count,) = struct.unpack_from(">i", body, 5)
        waiting = publisher.waiting
        for i in range(count):
            (publishing_id,) = _ID.unpack_from(body, 9 + 8 * i)
            batch = waiting.pop(publishing_id, None)
            if batch is not None:
                batch.remaining -= 1
                if batch.remaining == 0 and not batch.future.done():
                    batch.future.set_result(None)

    def _refused(self, body: memoryview) -> None:
        publisher = self._publishers.get(body[4])
        if publisher is None:
            return
        (count,) = struct.unpack_from(">i", body, 5)
        for i in range(count):
            publishing_id, code = _ERROR.unpack_from(body, 9 + 10 * i)
            batch = publisher.waiting.pop(publishing_id, None)
            if batch is not None and not batch.future.done():
                kind: type[AdapterError] = AdapterError
                if code == Code.STREAM_DOES_NOT_EXIST:
                    self.forget_publisher(publisher.stream)
                    kind = StreamMissing
                elif code == Code.STREAM_NOT_AVAILABLE:  # its node is (re)starting
                    kind = AdapterUnavailable
                batch.future.set_exception(
                    kind(
                        f"RabbitMQ refused an event for stream {publisher.stream!r} "
                        f"({describe(code)})"
                    )
                )

    # ------------------------------------------------------------------ frames in

    def _frame(self, body: memoryview) -> None:
        key, _ = _KEY.unpack_from(body, 0)
        if key == Key.DELIVER:
            chunk = wire.read_chunk(body[4:])
            subscriber = self._subscriptions.get(chunk.subscription_id)
            if subscriber is not None:
                subscriber.deliver(chunk)
        elif key == Key.PUBLISH_CONFIRM:
            self._confirmed(body)
        elif key == Key.PUBLISH_ERROR:
            self._refused(body)
        elif key == Key.CREDIT | wire.RESPONSE:
            code, subscription_id = struct.unpack_from(">HB", body, 4)
            log.warning(
                "RabbitMQ refused credit for subscription %d (%s)", subscription_id, describe(code)
            )
        elif key & wire.RESPONSE:
            (corr,) = _SIZE.unpack_from(body, 4)
            future = self._waiting.pop(corr, None)
            if future is not None and not future.done():
                future.set_result(body)
        elif key == Key.TUNE:
            frame_max, heartbeat = struct.unpack_from(">II", body, 4)
            if self._tune is not None and not self._tune.done():
                self._tune.set_result((frame_max, heartbeat))
        elif key == Key.METADATA_UPDATE:
            reader = Reader(body, 4)
            code = reader.u16()
            self._stream_gone(reader.string(), code)
        elif key == Key.CLOSE:
            reader = Reader(body, 4)
            corr, code = reader.u32(), reader.u16()
            reason = reader.string()
            with contextlib.suppress(AdapterError):
                self._write(wire.frame(Key.CLOSE | wire.RESPONSE, struct.pack(">IH", corr, 1)))
            self._fail(
                AdapterUnavailable(f"RabbitMQ closed the connection: {reason} ({describe(code)})")
            )
            transport = self._protocol.transport
            if transport is not None:
                transport.close()

    def _stream_gone(self, stream: str, code: int) -> None:
        """A stream was deleted or moved: its subscriptions end, its publisher goes."""
        self.forget_publisher(stream)
        error = AdapterUnavailable(f"RabbitMQ stream {stream!r} is unavailable ({describe(code)})")
        for subscription_id, subscriber in list(self._subscriptions.items()):
            if getattr(subscriber, "stream", None) == stream:
                self._subscriptions.pop(subscription_id, None)
                subscriber.lost(error)

    def _lost(self, exc: Exception | None) -> None:
        if self._closed and self._error is None:
            self._fail(AdapterError("the RabbitMQ connection is closed"))
            return
        reason = f": {exc!r}" if exc is not None else ""
        self._fail(AdapterUnavailable(f"RabbitMQ connection lost{reason}"))

    def _fail(self, error: AdapterError) -> None:
        if self._error is not None:
            return
        self._error = error
        self._ended.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()
        if self._tune is not None and not self._tune.done():
            self._tune.set_exception(error)
            self._tune.exception()  # retrieved: the handshake may have failed before it
        for publisher in self._publishers.values():
            for batch in publisher.waiting.values():
                if not batch.future.done():
                    batch.future.set_exception(error)
                    batch.future.exception()
            publisher.waiting.clear()
        subscribers = list(self._subscriptions.values())
        self._subscriptions.clear()
        for subscriber in subscribers:
            subscriber.lost(error)
        self._protocol.resumed.set()
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    # ------------------------------------------------------------------ closing

    def _abort(self) -> None:
        self._closed = True
        transport = self._protocol.transport
        if transport is not None:
            transport.abort()
        self._fail(AdapterError("the RabbitMQ connection is closed"))

    async def close(self) -> None:
        """Close the connection (politely if it is up). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._error is None:
                with contextlib.suppress(AdapterError):
                    await self.request(
                        lambda corr: wire.close_frame(corr, 1, "OK"), "closing the connection"
                    )
        finally:  # also when cancelled while waiting for the answer: nothing left open
            if self._heartbeat is not None:
                self._heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._heartbeat
            transport = self._protocol.transport
            if transport is not None:
                transport.close()
            self._fail(AdapterError("the RabbitMQ connection is closed"))
