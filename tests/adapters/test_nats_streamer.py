"""The NATS JetStream event streamer: the conformance suites, names, layout, reconnects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _nats_support import delete_prefix, nats_url, new_prefix, with_options

from conveyor.abc import Delivery, EventStreamer
from conveyor.adapters.nats import NatsEventStreamer
from conveyor.adaptertest import EventStreamerSuite, ReportsPendingSuite, TailsTopicsSuite

__all__ = ["nats_url"]

pytestmark = pytest.mark.nats


@pytest.fixture
async def nats_streamer(nats_url: str) -> AsyncIterator[NatsEventStreamer]:
    prefix = new_prefix()
    streamer = NatsEventStreamer(with_options(nats_url, prefix=prefix))
    try:
        yield streamer
    finally:
        await streamer.close()
        await delete_prefix(nats_url, prefix)


class TestNatsEventStreamer(EventStreamerSuite):
    @pytest.fixture
    async def streamer(self, nats_streamer: NatsEventStreamer) -> EventStreamer:
        return nats_streamer


class TestNatsReportsPending(ReportsPendingSuite):
    @pytest.fixture
    async def streamer(self, nats_streamer: NatsEventStreamer) -> EventStreamer:
        return nats_streamer


class TestNatsTailsTopics(TailsTopicsSuite):
    @pytest.fixture
    async def streamer(self, nats_streamer: NatsEventStreamer) -> EventStreamer:
        return nats_streamer


def test_the_streamer_delivers_per_event() -> None:
    assert NatsEventStreamer.delivery is Delivery.PER_EVENT
