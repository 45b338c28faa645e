"""The protocol pieces the NATS adapter builds and reads itself, and the client's direct
subscriptions and prebuilt publishes that carry them (the streamer's hot paths)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import nats.js.errors
import pytest
from _nats_support import nats_url
from nats.aio.client import Client
from nats.js.api import StreamConfig

from conveyor.adapters.nats._connection import NatsClient, NatsConnection
from conveyor.adapters.nats._publish import Publisher
from conveyor.adapters.nats._wire import header_block, hpub, pub, status
from conveyor.adaptertest._fixtures import WAIT_TIMEOUT

__all__ = ["nats_url"]


def test_a_status_message_gives_its_code_and_description() -> None:
    assert status(b"NATS/1.0 404 No Messages\r\n\r\n") == ("404", "No Messages")
    assert status(b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\n\r\n") == (
        "408",
        "Request Timeout",
    )
    assert status(b"NATS/1.0 503\r\n\r\n") == ("503", "")


def test_headers_without_a_status_are_not_a_status() -> None:
    assert status(b"NATS/1.0\r\nNats-Msg-Id: a\r\n\r\n") is None
    assert status(None) is None
    assert status(b"") is None


def test_a_header_block_has_the_version_line_a_line_per_header_and_an_empty_line() -> None:
    assert header_block({"A": "b", "Nats-Msg-Id": "c1"}) == (
        b"NATS/1.0\r\nA: b\r\nNats-Msg-Id: c1\r\n\r\n"
    )
    assert header_block({}) == b"NATS/1.0\r\n\r\n"


def test_commands_frame_their_payload_with_its_size() -> None:
    assert pub(b"s", b"hello") == b"PUB s 5\r\nhello\r\n"
    assert pub(b"s", b"", reply=b"r.1") == b"PUB s r.1 0\r\n\r\n"
    block = b"NATS/1.0\r\n\r\n"
    assert hpub(b"s", b"r", block, b"xy") == b"HPUB s r 12 14\r\nNATS/1.0\r\n\r\nxy\r\n"


@pytest.fixture
async def clients(nats_url: str) -> AsyncIterator[tuple[NatsClient, Client]]:
    """Conveyor's client and a plain nats-py one, on the test server."""
    conn = NatsConnection(nats_url)
    plain = await nats.connect(nats_url)
    try:
        nc, _ = await conn.client()
        yield nc, plain
    finally:
        await plain.close()
        await conn.close()


@pytest.mark.nats
async def test_a_prebuilt_publish_reaches_a_plain_subscriber_with_its_headers(
    clients: tuple[NatsClient, Client],
) -> None:
    # Given a plain nats-py subscriber, and conveyor's client
    nc, plain = clients
    sub = await plain.subscribe("conveyor-wire-test.plain")
    await plain.flush()

    # When conveyor sends an HPUB it built itself, then a PUB
    block = header_block({"Nats-Msg-Id": "m1", "X-Kind": "a b"})
    nc.send(hpub(b"conveyor-wire-test.plain", b"reply.7", block, b"payload"), 7)
    nc.send(pub(b"conveyor-wire-test.plain", b"second"), 6)

    # Then the subscriber reads both as nats-py would have sent them
    first = await sub.next_msg(timeout=WAIT_TIMEOUT)
    assert (first.data, first.reply) == (b"payload", "reply.7")
    assert first.headers == {"Nats-Msg-Id": "m1", "X-Kind": "a b"}
    second = await sub.next_msg(timeout=WAIT_TIMEOUT)
    assert (second.data, second.headers) == (b"second", None)


@pytest.mark.nats
async def test_a_direct_subscription_hands_over_raw_messages_until_unsubscribed(
    clients: tuple[NatsClient, Client],
) -> None:
    # Given a direct subscription and an ordinary one on conveyor's client
    nc, plain = clients
    got: list[tuple[bytes, bytes, bytes, bytes | None]] = []
    arrived = asyncio.Event()

    def handler(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        got.append((subject, reply, data, headers))
        arrived.set()

    direct = await nc.subscribe_direct("conveyor-wire-test.direct", handler)
    marker = await nc.subscribe("conveyor-wire-test.marker")
    await nc.flush()

    # When another client publishes to it, with and without headers
    await plain.publish("conveyor-wire-test.direct", b"one", reply="r.1")
    await plain.publish("conveyor-wire-test.direct", b"two", headers={"H": "v"})
    await plain.flush()

    # Then the handler gets subject, reply, payload and the raw header block
    async with asyncio.timeout(WAIT_TIMEOUT):
        while len(got) < 2:
            arrived.clear()
            await arrived.wait()
    assert got[0] == (b"conveyor-wire-test.direct", b"r.1", b"one", None)
    assert got[1][:3] == (b"conveyor-wire-test.direct", b"", b"two")
    assert got[1][3] == b"NATS/1.0\r\nH: v\r\n\r\n"

    # And once unsubscribed it gets nothing more: a message published after it by the
    # same client arrives elsewhere while the direct one never comes
    await nc.unsubscribe_direct(direct)
    await nc.flush()
    await plain.publish("conveyor-wire-test.direct", b"three")
    await plain.publish("conveyor-wire-test.marker", b"after")
    await plain.flush()
    assert (await marker.next_msg(timeout=WAIT_TIMEOUT)).data == b"after"
    assert len(got) == 2


@pytest.mark.nats
async def test_a_published_batch_gets_its_sequences_in_order_or_its_first_error(
    nats_url: str,
) -> None:
    # Given a stream of the test's own, and a publisher on conveyor's connection
    conn = NatsConnection(nats_url)
    _, js = await conn.client()
    name = f"conveyor-wire-batch-{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.s"]))
    publisher = Publisher(conn)
    subject = f"{name}.s".encode()
    right = header_block({"Nats-Expected-Stream": name})
    wrong = header_block({"Nats-Expected-Stream": "another-stream"})
    try:
        # When a batch of three goes out, then one whose second message names
        # another stream (the server refuses that one and stores the others)
        ok = await (await publisher.publish(subject, [(b"a", right), (b"b", right), (b"c", right)]))
        failing = await publisher.publish(subject, [(b"d", right), (b"e", wrong), (b"f", right)])
        with pytest.raises(nats.js.errors.APIError):
            async with asyncio.timeout(WAIT_TIMEOUT):
                await failing

        # Then the first batch got the stream's sequences in order, the second its first
        # error, and the publisher still works: the next batch follows what was stored
        assert ok == [1, 2, 3]
        after = await (await publisher.publish(subject, [(b"g", right)]))
        assert after == [6]  # d and f were stored, e was not
        assert (await js.stream_info(name)).state.messages == 6
        publisher.discard()
        assert publisher._waiting == {}  # every answer came or was forgotten
    finally:
        await publisher.close()
        await js.delete_stream(name)
        await conn.close()


@pytest.mark.nats
async def test_flush_writes_what_is_queued_before_its_ping(
    clients: tuple[NatsClient, Client],
) -> None:
    # Given conveyor's client subscribed to a subject, noting what it reads in order
    nc, _ = clients
    seen: list[str] = []
    direct = await nc.subscribe_direct(
        "conveyor-wire-test.flush", lambda subject, reply, data, headers: seen.append("msg")
    )
    await nc.flush()
    pong = nc._process_pong

    async def noting_pong() -> None:
        seen.append("pong")
        await pong()

    nc._process_pong = noting_pong  # type: ignore[method-assign]

    # When it queues a publish to that subject and flushes at once
    nc.send(pub(b"conveyor-wire-test.flush", b"x"), 1)
    await nc.flush()

    # Then the server read the publish before the PING: the message came before the PONG
    assert seen == ["msg", "pong"]
    await nc.unsubscribe_direct(direct)
