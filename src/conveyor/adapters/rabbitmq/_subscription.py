"""``Subscribed``: one subscription to a stream, as a reader and the tails' hub hold it.

It keeps the subscription's ID on its client, the credit given to it and the chunks it
delivered, and answers whether the node has sent everything it had (``sent_all``). The
stream protocol of RabbitMQ 3.10 tells a subscriber nothing when it has read to the end
(its ``StreamStats`` command came in 3.11), but the node sends a subscription every
chunk it has, up to the credit given, as it handles the subscribe or credit frame,
before it reads the connection's next frame. So a request (a cursor query) sent behind
the credit frames tells: if, when its answer comes, fewer chunks arrived than credit was
given before it, the node had no more to send then.
"""

from __future__ import annotations

import contextlib
import functools

from ..._errors import AdapterError
from . import _wire as wire
from ._client import StreamClient, Subscription
from ._wire import Code

__all__ = ["Subscribed"]


class Subscribed:
    """A subscription of ``stream`` for ``what`` (error messages) on ``client``, given
    ``credit`` chunks at first (module docstring). ``open`` it again, on a new ``client``,
    after it was ``lost``."""

    __slots__ = ("_opened", "_what", "chunks", "client", "credit", "given", "id", "stream")

    def __init__(self, client: StreamClient, stream: str, what: str) -> None:
        self.client = client
        self.stream = stream
        self.credit = client.options.credit
        self._what = what
        self.id: int | None = None
        """The subscription's ID on the client while it is open."""
        self.given = 0
        """Credit given to the current subscription."""
        self.chunks = 0
        """Chunks it delivered (``arrived``)."""
        self._opened = 0  # subscriptions made: tells an answer about an earlier one apart

    async def open(self, subscriber: Subscription, *, offset: int | None, first: bool) -> None:
        """Subscribe ``subscriber`` from ``offset``, else from the first message (``first``)
        or the next one written."""
        client = self.client
        # Known before the answer: chunks may come first, and each gives its credit back.
        subscription = self.id = client.subscription_id(subscriber)
        self.given, self.chunks = self.credit, 0
        self._opened += 1
        try:
            await client.request(
                functools.partial(
                    wire.subscribe_frame,
                    subscription_id=subscription,
                    stream=self.stream,
                    offset=offset,
                    first=first,
                    credit=self.credit,
                ),
                f"subscribing {self._what}",
            )
        except BaseException:
            self.id = None
            client.release_subscription(subscription)
            raise

    def arrived(self) -> None:
        """A chunk of the subscription arrived."""
        self.chunks += 1

    def give(self, credit: int) -> None:
        """Give the node ``credit`` more chunks (nothing if the subscription is gone)."""
        subscription = self.id
        if subscription is None or not self.client.alive:
            return
        with contextlib.suppress(AdapterError):
            self.client.send(wire.credit_frame(subscription, credit))
            self.given += credit

    async def sent_all(self, reference: str, cursors: str) -> bool:
        """Whether the node had sent everything it had when it read this request (the
        query of ``reference`` in ``cursors``), the subscription still the same one.
        Raises ``AdapterError`` if the request fails."""
        opened, given = self._opened, self.given
        await self.client.request(
            functools.partial(wire.query_offset_frame, reference=reference, stream=cursors),
            f"reaching the end of the stream for {self._what}",
            allow=(Code.NO_OFFSET,),
        )
        return self.id is not None and opened == self._opened and given > self.chunks

    def lost(self) -> None:
        """The client ended the subscription (connection lost, stream deleted)."""
        self.id = None

    async def close(self) -> None:
        """End the subscription, if it is open. Idempotent."""
        subscription, self.id = self.id, None
        if subscription is None:
            return
        client = self.client
        try:
            if client.alive:
                with contextlib.suppress(AdapterError):
                    await client.request(
                        functools.partial(wire.unsubscribe_frame, subscription_id=subscription),
                        f"closing {self._what}",
                        allow=(Code.SUBSCRIPTION_ID_DOES_NOT_EXIST,),
                    )
        finally:
            client.release_subscription(subscription)
