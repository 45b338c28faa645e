"""``NatsConnection``: one client connection to a NATS server, shared by the adapters of a
backend, opened on first use and re-established by the client after a drop.

The client (nats-py) reconnects by itself, forever, every half second, and buffers what is
published meanwhile; subscriptions are made again on the new connection. What lived only
in the old connection is lost: pull requests waiting on the server, and messages on their
way. Receivers and tails register ``on_reconnect`` to renew their pull requests and
consumers at once instead of waiting for them to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import DEFAULT_FLUSH_TIMEOUT, Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from ..._errors import AdapterError
from ..._urls import redact, scrub
from ._errors import checkpoint, translate
from ._names import bell, stream_name, subject
from ._options import NatsOptions, split_url

__all__ = ["Handler", "NatsClient", "NatsConnection", "Topic"]

log = logging.getLogger("conveyor.adapters.nats")

_STREAM_NAME_IN_USE = 10058
_SUBJECTS_OVERLAP = 10065


class Topic:
    """Where a topic's events live: its stream, the stream's one subject, its doorbell."""

    __slots__ = ("bell", "name", "stream", "subject")

    def __init__(self, name: str, stream: str, subject: str, bell: str) -> None:
        self.name: str = name
        self.stream: str = stream
        self.subject: str = subject
        self.bell: str = bell
        """The doorbell: a core subject rung after events are stored (``_pull``)."""


Handler = Callable[[bytes, bytes, bytes, bytes | None], None]
"""A direct subscription's handler: called on the client's read loop with a message's
subject, reply subject, payload and raw header block (``None`` without headers)."""


class NatsClient(Client):
    """nats-py's client with a read loop that survives the answer to an abandoned
    ``flush``, direct subscriptions and prebuilt publishes.

    The PONG. ``flush()`` sends a PING and queues a future for its PONG; when the flush
    times out or its caller is cancelled (a receiver closed while its process is
    cancelled), the future is cancelled but stays queued. nats-py (2.16) then sets the
    result of that cancelled future when the PONG comes: ``InvalidStateError`` ends the
    read loop while the client still counts as connected, so nothing more is read (no
    publish is acknowledged, no message arrives) until the stale-connection check
    reconnects, minutes later. Here the PONG answers its own PING, and an abandoned one
    is skipped.

    Direct subscriptions (``subscribe_direct``) hand each message to a plain function on
    the read loop: no ``Msg``, no parsed headers, no queue and no task between the socket
    and the handler, which nats-py spends on every message of a subscription with a
    callback. Conveyor's hot paths (pull answers, publish acknowledgements) use them;
    ``send`` queues a command its caller built (``PUB``/``HPUB`` on subjects conveyor
    made), skipping the validation and formatting of ``publish``, and has it written
    without nats-py's flusher task.
    """

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, Handler] = {}
        self._write_scheduled = False

    async def _process_pong(self) -> None:
        if self._pongs:
            future = self._pongs.pop(0)
            if not future.done():
                future.set_result(True)
            self._pongs_received += 1
            self._pings_outstanding = 0

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        handler = self._direct.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        handler(bytes(subject), bytes(reply), data, headers)

    async def subscribe_direct(self, subject: str, handler: Handler) -> Subscription:
        """Subscribe ``subject``, every message going to ``handler`` (see the class)."""
        sid = self._sid + 1  # the one ``subscribe`` takes before it first yields
        self._direct[sid] = handler
        try:
            sub = await self.subscribe(subject)
        except BaseException:
            self._direct.pop(sid, None)
            raise
        return sub

    async def unsubscribe_direct(self, sub: Subscription) -> None:
        self._direct.pop(sub._id, None)
        await sub.unsubscribe()

    def send(self, command: bytes, payload_size: int) -> None:
        """Queue ``command`` (a whole ``PUB`` or ``HPUB`` with its payload); the same
        errors as ``publish`` when closed, draining or buffering beyond the limit while
        reconnecting, or when the payload is too large. While connected, what is queued
        is written once the loop's current round of callbacks is done (``_write_soon``);
        while reconnecting it waits in the client's buffer, which the client writes once
        the subscriptions are made again."""
        if self.is_closed:
            raise nats.errors.ConnectionClosedError
        if self.is_draining_pubs:
            raise nats.errors.ConnectionDrainingError
        if not self.is_connected and (
            self._max_pending_size <= 0
            or payload_size + self._pending_data_size > self._max_pending_size
        ):
            raise nats.errors.OutboundBufferLimitError
        if payload_size > self._max_payload:
            raise nats.errors.MaxPayloadError
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        self._pending.append(command)
        self._pending_data_size += len(command)
        if not self._write_scheduled and self.is_connected:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_soon)

    async def flush(self, timeout: int = DEFAULT_FLUSH_TIMEOUT) -> None:
        """Write what is queued, then ``PING`` and wait for the ``PONG``: the server has
        then read everything sent before (nats-py writes its ``PING`` at once, ahead of
        what still waits in its buffer)."""
        self._write_soon()
        await super().flush(timeout)

    def _write_soon(self) -> None:
        """Write what is queued, if still connected: what nats-py's flusher task does,
        without its queue, future and task step for each write."""
        self._write_scheduled = False
        transport = self._transport
        if self._pending_data_size > 0 and self.is_connected and transport is not None:
            pending, self._pending = self._pending, []
            self._pending_data_size = 0
            transport.writelines(pending)


class NatsConnection:
    """A lazily opened client connection with its JetStream context (see the module).

    ``NatsConnection("nats://host:4222?prefix=app")``; keyword options override the URL's.
    """

    def __init__(self, url: str, **options: Any) -> None:
        server, settings = split_url(url, options)
        self.url: str = url
        """The URL as given (messages show it redacted)."""
        self.options: NatsOptions = settings
        self._server = server
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._opening: asyncio.Lock | None = None
        self._topics: dict[str, Topic] = {}
        self._reconnect_hooks: list[Callable[[], Awaitable[None]]] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"NatsConnection({redact(self.url)!r})"

    @property
    def closed(self) -> bool:
        return self._closed

    async def client(self) -> tuple[NatsClient, JetStreamContext]:
        """The connected client and its JetStream context (connecting on first use).

        Raises ``AdapterUnavailable`` if the server does not answer, ``AdapterError`` once
        closed.
        """
        if self._closed:
            raise AdapterError("the NATS connection is closed")
        if self._nc is not None and self._js is not None:
            return self._nc, self._js
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._nc is None:
                await self._open()
        assert self._nc is not None
        assert self._js is not None
        return self._nc, self._js

    async def _open(self) -> None:
        nc = NatsClient()
        options = self.options
        try:
            await nc.connect(
                servers=[self._server],
                connect_timeout=max(1, round(options.connect_timeout)),
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # seconds, any number
                # Two attempts now (a server that does not answer is an error for the
                # caller, not an endless loop); once connected, reconnect forever.
                max_reconnect_attempts=1,
                allow_reconnect=False,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
                name="conveyor",
            )
        except Exception as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise translate(exc, f"connecting to {redact(self.url)}", self.url) from exc
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        self._nc = nc
        self._js = nc.jetstream(timeout=options.request_timeout)
        checkpoint()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS client error: %s", scrub(repr(exc), self.url))

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.info("NATS connection lost; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("NATS connection re-established")
        for hook in list(self._reconnect_hooks):
            try:
                await hook()
            except Exception as exc:  # one reader's trouble must not stop the others
                log.warning("after a NATS reconnect: %s", scrub(repr(exc), self.url))

    def on_reconnect(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Call ``hook`` after every reconnect (until ``remove_reconnect_hook``)."""
        self._reconnect_hooks.append(hook)

    def remove_reconnect_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Stop calling ``hook`` after reconnects (unknown hooks are ignored)."""
        if hook in self._reconnect_hooks:
            self._reconnect_hooks.remove(hook)

    # ------------------------------------------------------------------ streams

    def topic(self, name: str) -> Topic:
        """The stream and subject of ``name`` (no I/O; see ``ensure``)."""
        prefix = self.options.prefix
        return Topic(name, stream_name(prefix, name), subject(prefix, name), bell(prefix, name))

    async def ensure(self, name: str) -> Topic:
        """The topic's stream, created if missing (limits retention, ``max_age``)."""
        known = self._topics.get(name)
        if known is not None:
            return known
        topic = self.topic(name)
        _, js = await self.client()
        options = self.options
        config = StreamConfig(
            name=topic.stream,
            subjects=[topic.subject],
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=options.max_age or None,
            storage=StorageType.MEMORY if options.storage == "memory" else StorageType.FILE,
            num_replicas=options.replicas,
            duplicate_window=options.duplicate_window,
            description=f"conveyor topic {name!r}"[:4000],
        )
        try:
            try:
                await js.stream_info(topic.stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
        except nats.js.errors.APIError as exc:
            if exc.err_code == _SUBJECTS_OVERLAP:
                raise AdapterError(
                    f"cannot create the stream of topic {name!r}: its subject "
                    f"{topic.subject!r} is already in another stream of the server"
                ) from exc
            if exc.err_code != _STREAM_NAME_IN_USE:  # else another process made it first
                raise translate(exc, f"creating the stream of topic {name!r}", self.url) from exc
        except Exception as exc:
            raise translate(exc, f"creating the stream of topic {name!r}", self.url) from exc
        self._topics[name] = topic
        checkpoint()
        return topic

    def forget(self, name: str) -> None:
        """Forget that ``name``'s stream exists (it was deleted)."""
        self._topics.pop(name, None)

    async def close(self) -> None:
        """Close the client connection (flushing what is buffered). Idempotent."""
        if self._closed:
            return
        self._closed = True
        nc, self._nc, self._js = self._nc, None, None
        self._reconnect_hooks.clear()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
