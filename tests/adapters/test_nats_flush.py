"""A NATS connection keeps reading after a ``flush`` that gave up before its PONG.

nats-py queues one future per PING and, when a PONG comes, sets the result of the oldest.
A flush that timed out (or whose caller was cancelled, as a receiver closing in a
cancelled process is) leaves its cancelled future queued; nats-py 2.16 then raised
``InvalidStateError`` in its read loop, which ended it with the client still "connected":
publishes were never acknowledged and no message arrived until the stale-connection check
reconnected minutes later (an outbox relay failed and backed off meanwhile, and a
benchmark with ``--workers 2`` stopped completing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats.errors
import pytest
from _nats_support import delete_prefix, nats_url, new_prefix, with_options

from conveyor.adapters.nats import NatsEventStreamer
from conveyor.adaptertest import new_name
from conveyor.adaptertest._fixtures import WAIT_TIMEOUT

__all__ = ["nats_url"]

pytestmark = pytest.mark.nats


@pytest.fixture
async def nats_streamer(nats_url: str) -> AsyncIterator[NatsEventStreamer]:
    prefix = new_prefix("fl")
    streamer = NatsEventStreamer(with_options(nats_url, prefix=prefix))
    try:
        yield streamer
    finally:
        await streamer.close()
        await delete_prefix(nats_url, prefix)


async def test_a_flush_that_gave_up_before_its_pong_leaves_the_connection_reading(
    nats_streamer: NatsEventStreamer,
) -> None:
    # Given a topic with a receiver, on a connection that is up
    topic = new_name("flush")
    sender = await nats_streamer.new_sender(topic)
    receiver = await nats_streamer.new_receiver(topic, new_name("reader"))
    nc, _ = await nats_streamer.connection.client()

    # When a flush gives up before the server's PONG comes (the PONG comes later)
    for _ in range(1000):
        try:
            await nc.flush(timeout=1e-6)  # type: ignore[arg-type]  # any number works
        except nats.errors.FlushTimeoutError:
            break
    else:
        # Every PONG beat the microsecond (a loaded loop runs the timer late): give up
        # the other way, cancelling a flush whose PING is out and whose PONG is not in.
        flush = asyncio.create_task(nc.flush(timeout=WAIT_TIMEOUT))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert not flush.done(), "a PONG came back within one turn of the loop"
        flush.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flush

    # Then the client still reads: a round trip is answered, a publish is acknowledged
    # and the receiver gets the event
    await nc.flush(timeout=WAIT_TIMEOUT)  # type: ignore[arg-type]  # any number works
    async with asyncio.timeout(WAIT_TIMEOUT):
        await sender.send("after", 1, {})
        assert [e.foreign_id for e in await receiver.recv(10)] == ["after"]
    await receiver.close()
    await sender.close()
