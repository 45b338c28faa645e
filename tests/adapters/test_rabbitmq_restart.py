"""A restart of the RabbitMQ node under a live streamer: what survives, and who goes on.

The node is this machine's own (``rabbitmqctl stop_app`` and ``start_app``, about 3 s in
all), so the test needs ``rabbitmqctl`` and a node on this host; without them it is
skipped with the reason (failed when ``CI=true``, as every service test). The node is
started again whatever the test's outcome.
"""

from __future__ import annotations

import asyncio
import shutil
from urllib.parse import urlsplit

import pytest
from _rabbitmq_support import delete_streams, new_prefix, rabbitmq_url, until_stored, with_options

from _services import unavailable
from conveyor.abc import AdapterUnavailable, Event, EventReceiver, EventSender, OutgoingEvent
from conveyor.adapters.rabbitmq import RabbitConnection, RabbitEventStreamer
from conveyor.adaptertest import new_name
from conveyor.adaptertest._fixtures import WAIT_TIMEOUT, within

__all__ = ["rabbitmq_url"]

pytestmark = pytest.mark.rabbitmq

_BACK_WITHIN = 15.0
"""Seconds the node may take to come back (``start_app`` returns before the streams do;
about 0.3 s here), well inside the test's timeout."""


async def _rabbitmqctl(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, f"rabbitmqctl {' '.join(args)}: {out.decode(errors='replace')}"


async def _node_answers(url: str) -> None:
    """Wait (a condition polled with a deadline) until the node takes a new connection."""
    deadline = asyncio.get_running_loop().time() + _BACK_WITHIN
    while True:
        connection = RabbitConnection(url, connect_timeout=2)
        try:
            await connection.client()
            return
        except AdapterUnavailable:
            assert asyncio.get_running_loop().time() < deadline, "the node did not come back"
            await asyncio.sleep(0.1)
        finally:
            await connection.close()


async def _restart_node(url: str) -> None:
    host = urlsplit(url).hostname
    if shutil.which("rabbitmqctl") is None or host not in ("127.0.0.1", "localhost", "::1"):
        unavailable("RabbitMQ node control", f"rabbitmqctl for the node at {host} is needed")
    try:
        await _rabbitmqctl("stop_app")
    finally:
        await _rabbitmqctl("start_app")
        await _node_answers(url)


async def _send_until_accepted(sender: EventSender, foreign_id: str) -> None:
    """Send as the outbox relay does: again after ``AdapterUnavailable`` (the first send
    after a restart may find its connection gone), within a deadline."""
    deadline = asyncio.get_running_loop().time() + _BACK_WITHIN
    while True:
        try:
            await sender.send(foreign_id, 1, {})
            return
        except AdapterUnavailable:
            assert asyncio.get_running_loop().time() < deadline, "no send was accepted"
            await asyncio.sleep(0.1)


async def _receive(receiver: EventReceiver, count: int) -> list[Event]:
    events: list[Event] = []
    while len(events) < count:
        events += await within(receiver.recv(count - len(events)), WAIT_TIMEOUT, "the events")
    return events


@pytest.mark.timeout(120)
async def test_after_a_node_restart_the_events_and_cursor_are_kept_and_everyone_goes_on(
    rabbitmq_url: str,
) -> None:
    streamer = RabbitEventStreamer(with_options(rabbitmq_url, prefix=new_prefix()))
    made: list[str] = []
    try:
        # Given a receiver handed three events, two of them acknowledged and stored
        topic, name = new_name("test"), new_name("reader")
        sender = await streamer.new_sender(topic)
        await sender.send_many([OutgoingEvent(str(i), 1, {}) for i in range(3)])
        receiver = await streamer.new_receiver(topic, name)
        held = await _receive(receiver, 3)
        for event in held[:2]:
            await receiver.ack(event)
        cursors = streamer.connection.topic(topic).cursors
        await until_stored(rabbitmq_url, cursors, name, held[1].id)
        made = streamer.connection.known_streams

        # When the node restarts under them
        await _restart_node(rabbitmq_url)

        # Then the sender goes on, and the receiver, over new connections, gets the next
        # event and nothing it had already (it subscribes again after what it received)
        await _send_until_accepted(sender, "3")
        (after,) = await _receive(receiver, 1)
        assert after.foreign_id == "3"
        for event in [held[2], after]:
            await receiver.ack(event)
        await until_stored(rabbitmq_url, cursors, name, after.id)
        await receiver.close()

        # And the stream kept every event: a new receiver name reads all four from the start
        fresh = await streamer.new_receiver(topic, new_name("reader"))
        assert [e.foreign_id for e in await _receive(fresh, 4)] == ["0", "1", "2", "3"]
        await fresh.close()

        # And the cursor survived: the name opened again starts after it
        await sender.send("4", 1, {})
        again = await streamer.new_receiver(topic, name)
        (first,) = await _receive(again, 1)
        assert first.foreign_id == "4"
        await again.close()
    finally:
        await streamer.close()
        if made:
            await delete_streams(rabbitmq_url, made)
