"""The RabbitMQ streams event streamer: the conformance suite, names, layout, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _rabbitmq_support import delete_streams, new_prefix, rabbitmq_url, with_options

from conveyor.abc import Delivery, EventStreamer
from conveyor.adapters.rabbitmq import RabbitEventStreamer
from conveyor.adaptertest import EventStreamerSuite

__all__ = ["rabbitmq_url"]

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def rabbit_streamer(rabbitmq_url: str) -> AsyncIterator[RabbitEventStreamer]:
    streamer = RabbitEventStreamer(with_options(rabbitmq_url, prefix=new_prefix()))
    try:
        yield streamer
    finally:
        made = streamer.connection.known_streams
        await streamer.close()
        await delete_streams(rabbitmq_url, made)


class TestRabbitEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self, rabbit_streamer: RabbitEventStreamer) -> EventStreamer:
        return rabbit_streamer


def test_the_streamer_keeps_a_cursor_per_receiver_name() -> None:
    assert RabbitEventStreamer.delivery is Delivery.CURSOR
