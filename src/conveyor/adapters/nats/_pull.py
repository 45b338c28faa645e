"""``PullReader``: a durable JetStream pull consumer, pulled only when there is news.

Why no waiting pull request. A pull request left waiting on the server outlives the
subscription that made it (NATS 2.9 delivered a NAKed message to the request of a closed
reader: it then waited ``ack_wait`` to come again). So this reader never leaves one: it
pulls with ``no_wait`` (the server answers at once with what it has, up to
``fetch_batch``, and ends the request with a status), and waits between pulls for a
*doorbell*: a core NATS subject that senders ring after their events are stored (the
streamer's ``P.bell.<topic token>``; for a connector, the outside subject itself). A
reader also looks again every ``recheck_interval`` seconds (a doorbell is at most once:
one lost in a reconnect, events NAKed elsewhere, or delivered again after ``ack_wait``),
sooner while its owner expects events that have not come yet (``expecting``, asked
before each wait: see ``_SOON``), and at once after a reconnect. The owner may look at
each doorbell's payload first (``heard``) and have it ignored: the streamer's own
doorbells, rung after it woke its readers directly (``ring``), which saves a pull that
would find nothing.

A ``no_wait`` pull is kept waiting after all when the consumer reaches
``max_ack_pending`` before it is answered in full, so a reader whose owner says how many
messages it holds unacknowledged (``held``) asks only for what the consumer has room for,
and while there is none, waits for the owner's acknowledgements (``made_room``).

A cancelled wait loses nothing: what arrives is buffered, the next ``take`` hands it out.
Closing waits for the pull in flight to end (it ends at once), unsubscribes, and hands
back every message held for the owner to NAK; no request of this reader is left on the
server, so a NAKed message goes to the next reader at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..._errors import AdapterError
from ._connection import NatsClient, NatsConnection
from ._errors import checkpoint, translate
from ._wire import pub, status

__all__ = ["PullReader"]

log = logging.getLogger("conveyor.adapters.nats")

_STATUS = "Status"
_HEARTBEAT = "100"
_NORMAL_END = ("404", "408")  # no messages; fewer than asked (no_wait)
_SOON = 0.02
"""First pause between pulls while the owner expects events that have not come, doubling
up to ``recheck_interval``: events NAKed by a reader that just closed (the server applies
a NAK asynchronously), or events whose publish was acknowledged (the server tells its
consumers about a stored message asynchronously, so a ``no_wait`` pull made at once after
the acknowledgement may find nothing yet)."""
_RETRY_AFTER_ERROR = 0.5
"""Seconds before pulling again after a request ended in an error status (no busy loop)."""


class PullReader:
    """Pulls consumer ``consumer`` of stream ``stream``, woken by ``bell`` (see the module)."""

    def __init__(
        self,
        conn: NatsConnection,
        stream: str,
        consumer: str,
        bell: str,
        expecting: Callable[[], bool] | None = None,
        heard: Callable[[bytes], bool] | None = None,
        headers: bool = True,
        held: Callable[[], int] | None = None,
    ) -> None:
        """``heard`` is called with each doorbell's payload: ``False`` ignores it (without
        it, every doorbell wakes the reader). ``held`` tells how many messages the owner
        was handed and has not acknowledged: a pull then never asks for more than the
        consumer's ``max_ack_pending`` leaves room for (see ``_room``), and the owner calls
        ``made_room`` when it acknowledges. With ``headers=False`` messages come
        without their headers (``Msg.headers`` is ``None``), read by a direct
        subscription of the client (``NatsClient.subscribe_direct``), which saves parsing
        them and a task hop per message: for owners that read only the payload and the
        reply subject (the streamer)."""
        self._conn = conn
        self._heard = heard
        self._expecting = expecting
        self._held = held
        self._max_pending = conn.options.max_ack_pending
        self._starved = asyncio.Event()  # set while waiting for acknowledgements to make room
        self._soon = _SOON
        self.stream: str = stream
        self.consumer: str = consumer
        self._bell = bell
        self._headers = headers
        self._nc: NatsClient | None = None
        options = conn.options
        self._batch = options.fetch_batch
        self._body = json.dumps({"batch": self._batch, "no_wait": True}).encode()
        self._recheck = options.recheck_interval
        self._buffer: deque[Msg] = deque()
        self._subs: list[Subscription] = []
        self._inbox = b""
        self._next_subject = b""
        self._request_id = 0
        self._active: int | None = None  # the pull in flight
        self._remaining = 0
        self._sent_at = 0.0
        self._dirty = True  # something may have come since the last pull
        self._recheck_at = 0.0
        self._soon_at = 0.0  # sooner than _recheck_at while the owner expects events
        self._retry_at = 0.0
        self.error_status: str | None = None
        """The status that ended the last pull in error (e.g. 409), until one succeeds."""
        self._arrived = asyncio.Event()
        self._ended = asyncio.Event()
        self._ended.set()
        self._closing = False

    async def start(self) -> None:
        nc, js = await self._conn.client()
        inbox = nc.new_inbox()
        self._inbox = inbox.encode()
        prefix = js._prefix  # "$JS.API", or a domain's
        self._next_subject = f"{prefix}.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}".encode()
        self._nc = nc
        try:
            if self._headers:
                self._subs.append(await nc.subscribe(f"{inbox}.*", cb=self._on_msg))
            else:
                self._subs.append(await nc.subscribe_direct(f"{inbox}.*", self._on_raw))
            self._subs.append(await nc.subscribe(self._bell, cb=self._on_bell))
        except Exception as exc:
            await self._unsubscribe()
            raise translate(exc, "subscribing to a pull inbox", self._conn.url) from exc
        self._conn.on_reconnect(self._on_reconnect)

    @property
    def buffered(self) -> int:
        """Messages received and not taken yet."""
        return len(self._buffer)

    @property
    def dirty(self) -> bool:
        """Whether something may have come since the last pull (a doorbell rang)."""
        return self._dirty and self._active is None

    def buffered_messages(self) -> list[Msg]:
        return list(self._buffer)

    async def _on_bell(self, msg: Msg) -> None:
        if self._heard is not None and not self._heard(msg.data):
            return
        self._dirty = True
        self._arrived.set()

    def ring(self) -> None:
        """Look again at the next ``take`` (this process knows something came)."""
        self._dirty = True
        self._arrived.set()

    async def _on_reconnect(self) -> None:
        self._end()  # the pull in flight was lost with the old connection
        self.ring()

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers or {}
        code = headers.get(_STATUS)
        if code:
            self._on_status(msg.subject, code, headers.get("Description", ""))
        else:
            self._on_data(msg)

    def _on_raw(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        """A message of the direct subscription (``headers=False``)."""
        found = None if data else status(headers)
        if found is not None:
            self._on_status(subject.decode(), *found)
        else:
            self._on_data(Msg(self._nc, subject.decode(), reply.decode(), data))  # type: ignore[arg-type]

    def _on_status(self, subject: str, code: str, description: str) -> None:
        if code == _HEARTBEAT:
            return
        try:
            rid = int(subject.rsplit(".", 1)[1])
        except (IndexError, ValueError):
            rid = -1
        if rid == self._active:
            if code not in _NORMAL_END:
                self.error_status = f"{code} {description}".strip()
                self._retry_at = time.monotonic() + _RETRY_AFTER_ERROR
                self._dirty = True
                log.debug("pull on %s/%s ended: %s", self.stream, self.consumer, code)
            else:
                self.error_status = None
            self._end()

    def _on_data(self, msg: Msg) -> None:
        self._buffer.append(msg)  # data messages carry the stream's subject, not the inbox
        if self._active is not None:
            self._remaining -= 1
            if self._remaining <= 0:
                self._dirty = True  # a full batch: there may be more
                self._end()
        self._arrived.set()

    def _expects(self) -> bool:
        return self._expecting is not None and self._expecting()

    def _end(self) -> None:
        self._active = None
        self._ended.set()
        self._arrived.set()

    async def take(self, max_events: int) -> list[Msg]:
        """Wait until messages are buffered; take up to ``max_events`` of them."""
        while True:
            checkpoint()
            self._arrived.clear()
            if self._closing:
                raise AdapterError(f"consumer {self.consumer!r} is closed")
            if self._buffer:
                self._soon = _SOON
                count = min(max(1, max_events), len(self._buffer))
                return [self._buffer.popleft() for _ in range(count)]
            now = time.monotonic()
            timeout = self._conn.options.request_timeout
            if self._active is not None:
                wait = self._sent_at + timeout - now
                if wait <= 0:  # no answer: lost on the way
                    self._end()
                    self._dirty = True
                    continue
            elif self._room() <= 0:
                self._starved.set()  # until the owner acknowledges (``made_room``)
                wait = self._recheck
            elif now < self._retry_at:
                wait = self._retry_at - now
            elif self._dirty or now >= self._recheck_at:
                await self._pull()
                continue
            elif self._expects():
                if now >= self._soon_at:
                    await self._pull()
                    continue
                wait = self._soon_at - now
            else:
                wait = self._recheck_at - now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._arrived.wait()

    def _room(self) -> int:
        """How many more messages the consumer would hand this reader now: its
        ``max_ack_pending`` less those the owner holds and those buffered. A pull for more
        than that would be answered in part and then kept waiting on the server until
        acknowledgements make room, ``no_wait`` or not: left there, it took messages
        after the reader had gone (they waited ``ack_wait``), and closing waited for it."""
        if self._held is None:
            return self._batch
        return self._max_pending - self._held() - len(self._buffer)

    def made_room(self) -> None:
        """The owner acknowledged: a reader waiting for room pulls again."""
        if self._starved.is_set():
            self._starved.clear()
            self.ring()

    async def _pull(self) -> None:
        nc, _ = await self._conn.client()
        batch = max(1, min(self._batch, self._room()))  # ``take`` pulls only with room
        body = self._body
        if batch < self._batch:
            body = json.dumps({"batch": batch, "no_wait": True}).encode()
        self._request_id += 1
        rid = self._request_id
        self._dirty = False
        self._active = rid
        self._ended.clear()
        self._remaining = batch
        self._sent_at = time.monotonic()
        self._recheck_at = self._sent_at + self._recheck
        self._soon_at = self._recheck_at
        if self._expects():
            self._soon_at = self._sent_at + min(self._recheck, self._soon)
            self._soon = min(self._recheck, self._soon * 2)
        try:
            nc.send(pub(self._next_subject, body, b"%s.%d" % (self._inbox, rid)), len(body))
        except Exception as exc:
            self._end()
            self._dirty = True
            raise translate(exc, f"pulling from {self.stream!r}", self._conn.url) from exc

    async def close(self) -> list[Msg]:
        """Stop pulling; the messages held (for the owner to NAK). Idempotent."""
        if self._closing:
            return []
        self._closing = True
        self._arrived.set()
        self._conn.remove_reconnect_hook(self._on_reconnect)
        if self._active is not None:  # a no_wait pull ends at once
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._conn.options.request_timeout):
                    await self._ended.wait()
        await self._unsubscribe()
        held = list(self._buffer)
        self._buffer.clear()
        return held

    async def _unsubscribe(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:  # made by start, which set self._nc first
            with contextlib.suppress(Exception):
                assert self._nc is not None
                await self._nc.unsubscribe_direct(sub)  # any subscription
