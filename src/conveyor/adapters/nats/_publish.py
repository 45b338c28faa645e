"""``Publisher``: JetStream publishes whose acknowledgements are awaited together.

Each message goes out as a core publish with a reply subject under one inbox
subscription of the publisher (``<inbox>.<n>``); the server's answer (a ``PubAck``, an
API error, or a no-responders status when no stream has the subject) fills in the
message's place in its batch. This is what nats-py's ``publish_async`` does, less its
per-message overhead (a NUID and random token, a semaphore, a future, a ``PubAck``
dataclass built from ``json.loads``, subject validation and header formatting): the
sender publishes a whole batch, then awaits one future for all its acknowledgements.
The command is built here (``_wire``) and the answers are read by a direct
subscription (``NatsClient.subscribe_direct``).

An answer lost with a dropped connection never comes: after a reconnect every batch
still waiting fails with ``AdapterUnavailable`` at once (``fail_waiting``), and the caller
sends again (an engine event's copy is dropped by the server as a duplicate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import nats.js.errors
from nats.aio.subscription import Subscription

from ..._errors import AdapterUnavailable
from ._connection import NatsClient, NatsConnection
from ._wire import hpub, status

__all__ = ["Publisher"]

_NO_RESPONDERS = "503"


class _Error(msgspec.Struct):
    code: int = 0
    err_code: int | None = None
    description: str | None = None


class _Ack(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _Error | None = None


_decode_ack = msgspec.json.Decoder(_Ack).decode


def _api_error(err: _Error) -> nats.js.errors.Error:
    """nats-py's exception for a JetStream API error (``from_error`` raises it)."""
    fields = {"code": err.code, "err_code": err.err_code, "description": err.description}
    try:
        nats.js.errors.APIError.from_error(fields)
    except nats.js.errors.Error as exc:
        return exc
    return nats.js.errors.APIError(err.code, err.description, err.err_code)  # not reached


class _Batch:
    """The publishes of one ``Publisher.publish`` call: their sequences, as they come."""

    __slots__ = ("future", "remaining", "seqs")

    def __init__(self, future: asyncio.Future[list[int]], size: int) -> None:
        self.future = future
        self.remaining = size
        self.seqs = [0] * size


class Publisher:
    """Publishes to JetStream on ``conn``; ``publish`` returns one future for the stored
    messages' stream sequences (see the module)."""

    def __init__(self, conn: NatsConnection) -> None:
        self._conn = conn
        self._sub: Subscription | None = None
        self._nc: NatsClient | None = None
        self._starting: asyncio.Lock | None = None
        self._prefix = b""
        self._count = 0
        self._waiting: dict[int, tuple[_Batch, int]] = {}  # reply token -> batch, index

    async def _start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._sub is not None:
                return
            nc, _ = await self._conn.client()
            inbox = nc.new_inbox()
            self._sub = await nc.subscribe_direct(f"{inbox}.*", self._on_answer)
            self._nc = nc
            self._prefix = f"{inbox}.".encode()

    async def publish(
        self, subject: bytes, messages: Sequence[tuple[bytes, bytes]]
    ) -> asyncio.Future[list[int]]:
        """Send each ``(payload, header block)`` (``_wire.header_block``) to ``subject``;
        the future gets their stream sequences in order, or the first error the server
        answers. One future for the batch, not one per message: the answers settle it
        without a callback each. A caller that stops waiting cancels the future and calls
        ``discard``."""
        if self._sub is None:
            await self._start()
        nc, _ = await self._conn.client()
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        if not messages:
            future.set_result([])
            return future
        batch = _Batch(future, len(messages))
        waiting = self._waiting
        prefix = self._prefix
        first = self._count + 1
        try:
            for index, (payload, headers) in enumerate(messages):
                self._count += 1
                token = self._count
                waiting[token] = (batch, index)
                nc.send(hpub(subject, b"%s%d" % (prefix, token), headers, payload), len(payload))
        except BaseException:
            for token in range(first, self._count + 1):
                waiting.pop(token, None)
            future.cancel()
            raise
        return future

    def discard(self) -> None:
        """Forget the publishes given up on (their batch's future is done, unanswered)."""
        done = [token for token, (batch, _) in self._waiting.items() if batch.future.done()]
        for token in done:
            del self._waiting[token]

    def _on_answer(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        try:
            token = int(subject[len(self._prefix) :])
        except ValueError:
            return
        entry = self._waiting.pop(token, None)
        if entry is None:
            return  # given up on, or answered already
        batch, index = entry
        future = batch.future
        if future.done():
            return  # given up on, or failed by an earlier answer
        if not data:
            code = (status(headers) or ("", ""))[0]
            if code == _NO_RESPONDERS:
                future.set_exception(nats.js.errors.NoStreamResponseError())
            else:
                number = int(code) if code.isdigit() else None
                future.set_exception(nats.js.errors.APIError(code=number))
            return
        try:
            ack = _decode_ack(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            future.set_exception(nats.js.errors.Error(f"unreadable publish ack: {exc}"))
            return
        if ack.error is not None:
            future.set_exception(_api_error(ack.error))
            return
        batch.seqs[index] = ack.seq
        batch.remaining -= 1
        if batch.remaining == 0:
            future.set_result(batch.seqs)

    def fail_waiting(self) -> None:
        """Fail every publish still waiting (the connection dropped: answers are lost)."""
        waiting = {id(batch): batch for batch, _ in self._waiting.values()}
        self._waiting.clear()
        for batch in waiting.values():
            if not batch.future.done():
                batch.future.set_exception(
                    AdapterUnavailable("the NATS connection dropped before the server acknowledged")
                )

    async def close(self) -> None:
        """Stop listening for answers (what still waits is failed). Idempotent."""
        self.fail_waiting()
        sub, self._sub = self._sub, None
        if sub is not None and self._nc is not None:
            try:
                await self._nc.unsubscribe_direct(sub)
            except Exception:  # the connection is closing or gone: nothing to undo
                return
