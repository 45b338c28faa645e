"""``RabbitConnection``: the stream-protocol connections the RabbitMQ adapters share.

Connections, each opened at first use and again when asked after it was lost (what was
subscribed on a lost one failed with ``AdapterUnavailable``, and the engine opens its
receivers again):

- one for publishing: the node sends a connection's publish confirms after the chunks it
  delivers to that connection's subscriptions, so on a connection shared with readers a
  confirm took about 3.7 ms instead of 0.3 ms (``benchmarks/rabbitmq_streams.py``);
- one for the rest (making and deleting streams, the tails' subscriptions);
- one per *lane* (``new_lane``): each receiver and connector consumer reads on a
  connection of its own. The node delivers a new chunk to the subscriptions of one
  connection late when that connection holds several: with an engine's six receivers on
  one connection a chunk came 2.2-6.4 ms after its confirm, on their own connections
  0.1-0.2 ms after it, and one run through three steps took 24 ms instead of 8 ms
  (``docs/backends/rabbitmq.md``).

It makes each topic's streams once (``ensure``): the events stream ``<prefix>.<topic>``
and the cursor stream ``<prefix>~.<topic>`` that keeps the receivers' offsets (``_names``,
``_streamer``), with the retention options.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from ..._errors import AdapterError
from . import _wire as wire
from ._client import StreamClient
from ._names import stream_name
from ._options import Endpoint, RabbitOptions, split_url
from ._wire import Code

__all__ = ["RabbitConnection", "Topic"]


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic's streams: its events, and the cursors of its receivers."""

    name: str
    stream: str
    cursors: str


class RabbitConnection:
    """A connection to a RabbitMQ node over the stream protocol, opened at first use.

    ``RabbitConnection("rabbitmq-stream://guest:guest@127.0.0.1:5552/?prefix=app")``;
    keyword options override the URL's (``RabbitOptions``). Raises ``AdapterError`` for a
    bad URL or option.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self._endpoint, self._options = split_url(url, options)
        self._clients: dict[object, StreamClient] = {}  # "publish", "main" or a lane
        self._opening: dict[object, asyncio.Lock] = {}
        self._lanes = 0
        self._topics: dict[str, Topic] = {}
        self._closed = False

    @property
    def options(self) -> RabbitOptions:
        return self._options

    @property
    def endpoint(self) -> Endpoint:
        """Where the node is (``str()`` shows the URL without its password)."""
        return self._endpoint

    @property
    def known_streams(self) -> list[str]:
        """Every stream this connection made or found for a topic (events and cursors)."""
        return [name for t in self._topics.values() for name in (t.stream, t.cursors)]

    async def client(self, *, publishing: bool = False, lane: int | None = None) -> StreamClient:
        """The live client for publishing, for ``lane`` (``new_lane``), or else the main
        one, opened (again) if there is none. Raises ``AdapterError`` once closed,
        ``AdapterUnavailable`` if the node does not answer."""
        if self._closed:
            raise AdapterError("the RabbitMQ connection is closed")
        key: object = "publish" if publishing else ("main" if lane is None else lane)
        client = self._clients.get(key)
        if client is not None and client.alive:
            return client
        lock = self._opening.get(key)
        if lock is None:
            lock = self._opening[key] = asyncio.Lock()
        async with lock:
            client = self._clients.get(key)
            if client is None or not client.alive:
                try:
                    client = await StreamClient.open(self._endpoint, self._options)
                except BaseException:
                    if lane is not None and key not in self._clients:
                        self._opening.pop(key, None)  # a lane that never opened: nothing kept
                    raise
                if self._closed or self._opening.get(key) is not lock:  # closed, released
                    await client.close()
                    raise AdapterError("the RabbitMQ connection is closed")
                self._clients[key] = client
            return client

    def new_lane(self) -> int:
        """A key for a connection of its own (``client(lane=...)``), for one reader;
        ``release`` it when the reader is done."""
        self._lanes += 1
        return self._lanes

    async def release(self, lane: int) -> None:
        """Close ``lane``'s connection (if it is open). Idempotent."""
        self._opening.pop(lane, None)
        client = self._clients.pop(lane, None)
        if client is not None:
            await client.close()

    def topic(self, topic: str) -> Topic:
        """The stream names of ``topic`` (checked, not made)."""
        prefix = self._options.prefix
        events = stream_name(prefix, topic)
        return Topic(topic, events, stream_name(f"{prefix}~", topic))

    async def ensure(self, topic: str) -> Topic:
        """``topic``'s streams, made if missing (once per connection)."""
        known = self._topics.get(topic)
        if known is not None:
            return known
        where = self.topic(topic)
        client = await self.client()
        arguments = self._arguments()
        for name in (where.stream, where.cursors):
            await client.request(
                functools.partial(wire.create_frame, stream=name, arguments=arguments),
                f"creating stream {name!r}",
                allow=(Code.STREAM_ALREADY_EXISTS,),
            )
        self._topics[topic] = where
        return where

    def forget(self, topic: str) -> None:
        """``topic``'s streams were deleted behind our back: make them again next time."""
        self._topics.pop(topic, None)

    def _arguments(self) -> dict[str, str]:
        options = self._options
        arguments: dict[str, str] = {}
        if options.max_age > 0:
            arguments["max-age"] = f"{max(1, round(options.max_age))}s"
        if options.max_length_bytes > 0:
            arguments["max-length-bytes"] = str(options.max_length_bytes)
        if options.max_segment_size_bytes > 0:
            arguments["stream-max-segment-size-bytes"] = str(options.max_segment_size_bytes)
        return arguments

    async def delete(self, names: list[str]) -> None:
        """Delete streams by name (missing ones are ignored): tests and tools clean up."""
        client = await self.client()
        for name in names:
            await client.request(
                functools.partial(wire.delete_frame, stream=name),
                f"deleting stream {name!r}",
                allow=(Code.STREAM_DOES_NOT_EXIST,),
            )
        self._topics = {k: t for k, t in self._topics.items() if t.stream not in names}

    async def close(self) -> None:
        """Close the clients. Idempotent."""
        if self._closed:
            return
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
