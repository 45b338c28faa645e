"""``RabbitConnection``: the stream-protocol connections the RabbitMQ adapters share.

It opens two ``StreamClient`` connections at first use, one for publishing and one for
reading (subscriptions and their offsets), and a new one when asked after one was lost
(what was subscribed on the lost one failed with ``AdapterUnavailable``, and the engine
opens its receivers again). Two, because the node sends a connection's publish confirms
after the chunks it delivers to that connection's subscriptions: on one shared connection
a confirm took about 3.7 ms instead of 0.3 ms (``benchmarks/rabbitmq_streams.py``).

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
        self._clients: dict[bool, StreamClient] = {}  # publishing? -> its client
        self._opening: asyncio.Lock | None = None
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

    async def client(self, *, publishing: bool = False) -> StreamClient:
        """The live client for reading (or ``publishing``), opened (again) if there is
        none. Raises ``AdapterError`` once closed, ``AdapterUnavailable`` if the node does
        not answer."""
        if self._closed:
            raise AdapterError("the RabbitMQ connection is closed")
        client = self._clients.get(publishing)
        if client is not None and client.alive:
            return client
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            client = self._clients.get(publishing)
            if client is None or not client.alive:
                client = await StreamClient.open(self._endpoint, self._options)
                if self._closed:
                    await client.close()
                    raise AdapterError("the RabbitMQ connection is closed")
                self._clients[publishing] = client
            return client

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
