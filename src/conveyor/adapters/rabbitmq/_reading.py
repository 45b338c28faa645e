"""``CursorReader``: one subscription to a stream, read under an offset reference.

What the event receiver and the connector consumer share. The reader asks the node for
the offset stored under its reference (in the cursor stream), subscribes right after it,
or, without one, from the stream's first message (or from the next one written, for
``stream_from_latest``), and hands out what arrives in offset order.

The cursor is the last offset of the unbroken run of acknowledged messages: handed-out
offsets wait in order, and an acknowledgement moves the cursor over every leading one
that is acknowledged. A moved cursor is stored once per turn of the event loop (one
``store_offset`` frame, however many acknowledgements came) and at ``close``; a reader
opened again under the reference starts right after it, so an acknowledged message that
followed an unacknowledged one comes again too (``Delivery.CURSOR``). A process that dies
loses at most what it acknowledged in its last turn: those come again, at once, to the
next reader.

Copies. The outbox relay sends an event again when it died between sending and deleting
its outbox rows, and the copy lands at another offset, so in another shard: handed out,
both copies would run the same step at once in two processes. A reader given an
``identity`` (engine events: run ID and record version) hands out only the first copy of
an identity among the last ``dedupe_window`` offsets it read; every reader of the topic
reads the same stream, so all of them keep the same copy. A reader opened at a stored
cursor first reads the ``dedupe_window`` offsets before it (handing none out) to know
what came before.

A lost connection does not end the reader: once it has handed out what it had received,
``take`` subscribes again on a new connection (``connect``) right after the last message
it received, and goes on; what it handed out stays handed out, and its acknowledgements
move the cursor as before. Only if no new connection can be made (or the stream is gone)
does ``take`` raise (``AdapterUnavailable``, ``AdapterError``).

Flow control is the protocol's credit: ``credit`` chunks may be on their way; each chunk
that arrives gives one back unless ``max_buffer`` messages wait to be handed out (then
``take`` gives it back as it hands them out).

The end of the stream (``find_end``, for the connector's ``pending``): a ``take`` that
finds nothing to hand out asks whether the node has sent everything it had
(``Subscribed.sent_all``); if so, the reader is ``caught_up`` until the next chunk
arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from ..._errors import AdapterError
from . import _wire as wire
from ._client import StreamClient
from ._subscription import Subscribed
from ._wire import Chunk, Code

__all__ = ["CursorReader"]

T = TypeVar("T")

Decode = Callable[[int, bytes | None, datetime], T]
"""Makes what is handed out from a message's offset, bytes (``None`` if unreadable) and
its chunk's time."""


class CursorReader(Generic[T]):
    """Reads ``stream`` under ``reference`` (cursor kept in ``cursors``); see the module."""

    def __init__(
        self,
        client: StreamClient,
        *,
        connect: Callable[[], Awaitable[StreamClient]],
        stream: str,
        cursors: str,
        reference: str,
        decode: Decode[T],
        what: str,
        identity: Callable[[T], str | None] | None = None,
        find_end: bool = False,
        release: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``connect`` gives the reader a live client again after one was lost; ``release``
        (if given) is awaited once the reader has closed, to close its connection."""
        self.stream = stream
        self._release = release
        self._sub = Subscribed(client, stream, what)
        self._connect = connect
        self._first = True
        self._cursors = cursors
        self._reference = reference
        self._decode = decode
        self._what = what
        options = client.options
        self._max_buffer = options.max_buffer
        self._start = 0  # the first offset to hand out (earlier ones in a chunk are skipped)
        self._from = 0  # the next offset to read (before _start: the look back for copies)
        self._identity = identity
        self._window = options.dedupe_window if identity is not None else 0
        self._seen: dict[str, int] = {}  # identity -> offset of its first copy
        self._seen_order: deque[tuple[int, str]] = deque()
        self._buffer: deque[tuple[int, T]] = deque()
        self._owed = 0
        self._wake = asyncio.Event()
        self._order: deque[int] = deque()  # handed out, in offset order (acked ones lazily)
        self._unacked: set[int] = set()
        self._handed_high = -1
        self._cursor: int | None = None  # last offset of the unbroken acknowledged run
        self._stored: int | None = None
        self._storing = False
        self._error: AdapterError | None = None
        self._closed = False
        self._find_end = find_end
        self._caught_up = False

    @property
    def cursor(self) -> int | None:
        """The last offset of the unbroken run of acknowledged messages (or the stored one),
        ``None`` while there is none."""
        return self._cursor

    @property
    def buffered(self) -> int:
        """Messages received and not handed out yet."""
        return len(self._buffer)

    @property
    def caught_up(self) -> bool:
        """Whether the node had nothing more to send when last asked, and nothing arrived
        since (only with ``find_end``; see the module docstring)."""
        return self._caught_up

    async def start(self, *, from_latest: bool) -> None:
        """Find the stored cursor and subscribe after it (module docstring)."""
        self._first = not from_latest
        code, reader = await self._sub.client.request(
            functools.partial(
                wire.query_offset_frame, reference=self._reference, stream=self._cursors
            ),
            f"reading the cursor of {self._what}",
            allow=(Code.NO_OFFSET,),
        )
        if code == Code.OK:
            self._stored = self._cursor = offset = reader.u64()
            self._start = offset + 1
            self._from = max(0, self._start - self._window)
            self._handed_high = offset
        await self._subscribe()

    async def _subscribe(self) -> None:
        """Subscribe on the current client from ``_from`` (from the first message, or the
        next one written, when nothing was read and no cursor was stored)."""
        known = self._cursor is not None or self._handed_high >= 0 or self._from > 0
        self._caught_up = False
        await self._sub.open(self, offset=self._from if known else None, first=self._first)

    async def _resubscribe(self) -> None:
        """After a lost connection: subscribe again on a new one, after what was received."""
        error = self._error
        self._error = None
        try:
            self._sub.client = await self._connect()
            await self._subscribe()
        except BaseException:
            if self._error is None:
                self._error = error
            raise

    # ------------------------------------------------------------------ from the client

    def deliver(self, chunk: Chunk) -> None:
        if self._closed:
            return
        self._sub.arrived()
        self._caught_up = False
        created_at = datetime.fromtimestamp(chunk.timestamp_ms / 1000, UTC)
        offset = chunk.first_offset
        start = self._start
        first = self._from
        decode = self._decode
        buffer = self._buffer
        identity = self._identity
        for data in wire.chunk_records(chunk):
            if offset >= first:
                item = decode(offset, data, created_at)
                key = identity(item) if identity is not None else None
                copy = key is not None and self._copy(key, offset)
                if offset >= start and not copy:
                    buffer.append((offset, item))
            offset += 1
        self._from = max(first, offset)  # read; a subscription made again goes on from here
        if self._cursor is None and buffer and self._handed_high < 0:
            self._handed_high = buffer[0][0] - 1  # the run starts at the first one delivered
        if len(buffer) < self._max_buffer:
            self._sub.give(1)
        else:
            self._owed += 1
        self._wake.set()

    def _copy(self, key: str, offset: int) -> bool:
        """Whether ``key`` came at an earlier offset within the window (else remember it)."""
        seen = self._seen
        earlier = seen.get(key)
        if earlier is not None and earlier < offset:
            return True
        seen[key] = offset
        order = self._seen_order
        order.append((offset, key))
        horizon = offset - self._window
        while order and order[0][0] <= horizon:
            old_offset, old_key = order.popleft()
            if seen.get(old_key) == old_offset:
                del seen[old_key]
        return False

    def lost(self, error: AdapterError) -> None:
        self._error = error
        self._sub.lost()
        self._wake.set()

    # ------------------------------------------------------------------ handing out

    async def take(self, max_items: int) -> list[tuple[int, T]]:
        """Wait for messages; up to ``max_items`` of them (cancellable; nothing is lost)."""
        while True:
            if self._closed:
                raise AdapterError(f"{self._what} is closed")
            if self._buffer:
                return self._hand_out(max(1, max_items))
            if self._error is not None:
                await self._resubscribe()
                continue
            self._wake.clear()
            if self._find_end and not self._caught_up and await self._ask_end():
                continue
            await self._wake.wait()

    async def _ask_end(self) -> bool:
        """Ask the node behind the credit given whether it had more to send (module
        docstring); whether it answered."""
        try:
            sent_all = await self._sub.sent_all(self._reference, self._cursors)
        except AdapterError:
            return False  # a lost connection shows as ``_error``; else the next chunk wakes
        if sent_all and not self._buffer:
            self._caught_up = True
        return True

    def _hand_out(self, limit: int) -> list[tuple[int, T]]:
        buffer = self._buffer
        out: list[tuple[int, T]] = []
        order = self._order
        unacked = self._unacked
        while buffer and len(out) < limit:
            item = buffer.popleft()
            out.append(item)
            order.append(item[0])
            unacked.add(item[0])
        self._handed_high = out[-1][0]
        if self._owed and len(buffer) < self._max_buffer:
            owed, self._owed = self._owed, 0
            self._sub.give(owed)
        return out

    def ack(self, offset: int) -> None:
        """Acknowledge a handed-out offset (in any order); the cursor moves over the run."""
        unacked = self._unacked
        if offset not in unacked:
            if offset <= self._handed_high:
                return  # acknowledged already
            raise AdapterError(f"offset {offset} was not handed out by {self._what}")
        unacked.discard(offset)
        order = self._order
        while order and order[0] not in unacked:
            order.popleft()
        cursor = order[0] - 1 if order else self._handed_high
        if self._cursor is None or cursor > self._cursor:
            self._cursor = cursor
            if not self._storing:
                self._storing = True
                asyncio.get_running_loop().call_soon(self._store)

    def _store(self) -> None:
        self._storing = False
        cursor = self._cursor
        if cursor is None or (self._stored is not None and cursor <= self._stored):
            return
        client = self._sub.client
        if not client.alive:
            return  # the next reader starts after the cursor stored last: those come again
        with contextlib.suppress(AdapterError):
            client.send(wire.store_offset_frame(self._reference, self._cursors, cursor))
            self._stored = cursor

    async def close(self) -> None:
        """Store the cursor, end the subscription. Idempotent."""
        if self._closed:
            return
        self._store()
        self._closed = True
        self._wake.set()
        try:
            await self._sub.close()
        finally:
            self._buffer.clear()
            if self._release is not None:
                await self._release()
