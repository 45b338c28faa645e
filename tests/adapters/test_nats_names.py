"""Names as NATS tokens: injective, valid for subjects, streams, consumers and keys."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from _nats_support import delete_prefix, nats_url, new_prefix, with_options

from conveyor.adapters.nats import NatsEventStreamer, escape
from conveyor.adapters.nats._names import MAX_TOKEN, stream_name, subject, unescape

__all__ = ["nats_url"]

AWKWARD = [
    "sync user",
    "sync_user",
    "sync=20user",
    "a.b",
    "a=2Eb",
    "*",
    ">",
    "",
    "=",
    "a/b",
    "a\\b",
    "ünï cödé",
    "tab\there",
    "a" * 300,
    "a" * 299 + "b",
]
_TOKEN = re.compile(r"^[A-Za-z0-9_=-]+$")


@pytest.mark.parametrize("name", AWKWARD)
def test_a_name_becomes_one_token_of_safe_characters(name: str) -> None:
    token = escape(name)

    assert _TOKEN.match(token), token
    assert len(token) <= MAX_TOKEN
    if len(token) < MAX_TOKEN and "=_" not in token:
        assert unescape(token) == name


def test_different_names_never_share_a_token_a_subject_or_a_stream() -> None:
    # Given names that a lossy scheme would merge (spaces as "_", dots dropped, ...)
    names = AWKWARD

    # Then every name has its own token, subject and stream name
    assert len({escape(n) for n in names}) == len(names)
    assert len({subject("p", n) for n in names}) == len(names)
    assert len({stream_name("p", n) for n in names}) == len(names)
    # And prefixes never mix: "p" and "p_ev" cannot share a stream name
    assert stream_name("p", "x_ev=y") != stream_name("p_ev", "x")
    assert {stream_name("p", n) for n in names}.isdisjoint({stream_name("p_ev", n) for n in names})


def test_the_escapes_spelled_out() -> None:
    assert escape("sync user") == "sync=20user"
    assert escape("a.b") == "a=2Eb"
    assert escape("*") == "=2A"
    assert escape(">") == "=3E"
    assert escape("=") == "=3D"
    assert escape("") == "="


@pytest.fixture
async def streamer(nats_url: str) -> AsyncIterator[NatsEventStreamer]:
    prefix = new_prefix("n")
    streamer = NatsEventStreamer(with_options(nats_url, prefix=prefix))
    try:
        yield streamer
    finally:
        await streamer.close()
        await delete_prefix(nats_url, prefix)


async def test_topics_and_receivers_with_awkward_names_each_get_only_their_own_events(
    streamer: NatsEventStreamer,
) -> None:
    # Given a sender and a receiver (named like its topic) per awkward topic name
    topics = ["sync user", "sync_user", "a.b", "*", ">", "a" * 300, "a" * 299 + "b"]
    senders = [await streamer.new_sender(t) for t in topics]
    receivers = [await streamer.new_receiver(t, t) for t in topics]

    # When each sends its own name
    for topic, sender in zip(topics, senders, strict=True):
        await sender.send(topic, 1, {"topic": topic})

    # Then each receiver gets exactly its own topic's event
    for topic, receiver in zip(topics, receivers, strict=True):
        async with asyncio.timeout(5):
            events = await receiver.recv(10)
        assert [e.foreign_id for e in events] == [topic]
        await receiver.ack(events[0])
        assert receiver.pending() == 0
