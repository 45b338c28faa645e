"""Waits share one tail per topic: an event costs a lookup only for a watched run, a gap
re-checks every wait, and an ended wait leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from conveyor import Builder, Record, Run, Workflow
from conveyor.abc import Delivery, EventReceiver, EventSender, Tail, TailBatch, TailsTopics
from conveyor.adapters.memory import (
    MemoryEventReceiver,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTail,
)

from ._support import WAIT, Doc, Env, Status, new_env, parked, settle


class CountingStore(MemoryRecordStore):
    """A memory store that counts lookups."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[str] = []

    async def lookup(self, run_id: str) -> Record:
        self.lookups.append(run_id)
        return await super().lookup(run_id)


class CountingStreamer(MemoryEventStreamer):
    """A memory streamer that counts the tails and receivers it opens."""

    def __init__(self) -> None:
        super().__init__()
        self.tails = 0
        self.receivers = 0

    async def tail(self, topic: str) -> MemoryTail:
        self.tails += 1
        return await super().tail(topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> MemoryEventReceiver:
        self.receivers += 1
        return await super().new_receiver(
            topic, name, stream_from_latest=stream_from_latest, poll_interval=poll_interval
        )


def callback_flow() -> Builder[Doc, Status]:
    """STARTED -(callback)-> DONE: runs stay put until called back (no step runs)."""

    async def done(run: Run[Doc, Status], payload: bytes) -> Status:
        return Status.DONE

    b = Builder("scale", Doc, Status)
    b.add_callback(Status.STARTED, done, Status.DONE)
    return b


async def test_a_thousand_open_waits_cost_one_lookup_per_event_and_no_receiver() -> None:
    # Given 1,000 waits on parked runs, through a client
    store, streamer = CountingStore(), CountingStreamer()
    wf = callback_flow().build(streamer, store, MemoryRoleScheduler())
    worker = callback_flow().build(streamer, store, MemoryRoleScheduler())
    async with wf.client() as client, worker:
        rids = [await client.trigger(f"order-{i}") for i in range(1000)]
        waits = [
            asyncio.create_task(client.wait(f"order-{i}", r, Status.DONE))
            for i, r in enumerate(rids)
        ]
        await settle()
        assert not any(w.done() for w in waits)
        receivers_before = streamer.receivers
        store.lookups.clear()
        # When one run completes
        await client.callback("order-7", Status.STARTED)
        async with asyncio.timeout(WAIT):
            run = await waits[7]
        # Then its wait returned after one lookup of that run, none of the others, and
        # the waits share one tail and opened no receiver
        assert run.run_id == rids[7]
        assert store.lookups == [rids[7]]
        assert streamer.tails == 1
        assert streamer.receivers == receivers_before
        assert not any(w.done() for i, w in enumerate(waits) if i != 7)
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def test_an_ended_or_cancelled_wait_leaves_nothing_behind(env: Env) -> None:
    wf = env.build(parked())
    async with wf.client() as client:
        rid = await client.trigger("fid")
        waiting = asyncio.create_task(client.wait("fid", rid, Status.DONE))
        await settle()
        assert wf._waits.watched() == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert wf._waits.watched() == 0
    # And once the client is closed no tail stays open
    assert wf._waits.open_tails() == []


async def test_outside_run_and_client_a_wait_closes_its_tail_when_it_ends(env: Env) -> None:
    wf = env.build(parked())
    async with wf.client() as client:
        rid = await client.trigger("fid")
    assert wf._waits.open_tails() == []
    worker = env.build(parked())
    async with worker:
        waiting = asyncio.create_task(wf.wait("fid", rid, Status.DONE))
        await settle()
        assert len(wf._waits.open_tails()) == 1
        await worker.pause(rid)
        await worker.cancel(rid)
        with pytest.raises(Exception, match="ended"):
            await waiting
    await settle()
    assert wf._waits.open_tails() == []


class GappyTail:
    """A tail that hands out nothing but the gaps a test asks for."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[TailBatch | None] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[TailBatch]:
        return self

    async def __anext__(self) -> TailBatch:
        batch = await self.queue.get()
        if batch is None:
            raise StopAsyncIteration
        return batch

    async def close(self) -> None:
        self.queue.put_nowait(None)


class NoTails:
    """A streamer without ``TailsTopics`` (it only has receivers)."""

    delivery = Delivery.CURSOR

    def __init__(self) -> None:
        self.inner = MemoryEventStreamer()
        self.receivers: list[str] = []

    async def new_sender(self, topic: str) -> EventSender:
        return await self.inner.new_sender(topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> EventReceiver:
        self.receivers.append(name)
        return await self.inner.new_receiver(
            topic, name, stream_from_latest=stream_from_latest, poll_interval=poll_interval
        )

    async def close(self) -> None:
        await self.inner.close()


class LossyStreamer(NoTails):
    """A streamer whose tails lose every event (as a dropped notification would) and
    signal gaps only when told."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[GappyTail] = []

    async def tail(self, topic: str) -> Tail:
        tail = GappyTail()
        self.opened.append(tail)
        return tail


async def test_a_gap_makes_every_open_wait_re_read_the_store() -> None:
    streamer, store = LossyStreamer(), MemoryRecordStore()
    wf = callback_flow().build(streamer, store, MemoryRoleScheduler())
    assert isinstance(streamer, TailsTopics)
    async with wf.client() as client:
        a = await client.trigger("a")
        b = await client.trigger("b")
        wait_a = asyncio.create_task(client.wait("a", a, Status.DONE))
        wait_b = asyncio.create_task(client.wait("b", b, Status.DONE))
        await settle()
        # When both runs complete, and their events never arrive
        await client.callback("a", Status.STARTED)
        await client.callback("b", Status.STARTED)
        await settle()
        assert not wait_a.done()
        assert not wait_b.done()
        # Then a gap signal makes both re-read the store and return
        streamer.opened[0].queue.put_nowait(TailBatch((), gap=True))
        async with asyncio.timeout(WAIT):
            assert (await wait_a).run_id == a
            assert (await wait_b).run_id == b


class FailingTail(GappyTail):
    async def __anext__(self) -> TailBatch:
        await super().__anext__()
        raise ConnectionError("the broker went away")


class FlakyStreamer(LossyStreamer):
    """The first tail fails when told to; later ones behave (and lose events)."""

    async def tail(self, topic: str) -> Tail:
        tail: GappyTail = FailingTail() if not self.opened else GappyTail()
        self.opened.append(tail)
        return tail


async def test_a_failed_tail_is_opened_again_and_the_waits_re_read_the_store() -> None:
    streamer, store = FlakyStreamer(), MemoryRecordStore()
    logged: list[str] = []

    class Log:
        def debug(self, msg: str, **meta: object) -> None: ...

        def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
            logged.append(f"{msg}: {exc}")

    wf = callback_flow().build(streamer, store, MemoryRoleScheduler(), logger=Log())
    async with wf.client() as client:
        a = await client.trigger("a")
        wait_a = asyncio.create_task(client.wait("a", a, Status.DONE))
        await settle()
        await client.callback("a", Status.STARTED)
        # When the tail fails
        streamer.opened[0].queue.put_nowait(TailBatch(()))
        # Then the failure is logged, a new tail opens, and the wait finds its run
        async with asyncio.timeout(WAIT):
            assert (await wait_a).run_id == a
    assert len(streamer.opened) == 2
    assert logged == ["wait: reading the topic failed; re-reading the store: the broker went away"]


async def test_without_tails_each_wait_uses_its_own_receivers() -> None:
    streamer = NoTails()
    assert not isinstance(streamer, TailsTopics)
    store = MemoryRecordStore()
    wf: Workflow[Doc, Status] = callback_flow().build(streamer, store, MemoryRoleScheduler())
    worker = callback_flow().build(streamer, store, MemoryRoleScheduler())
    async with wf.client(), worker:
        a = await wf.trigger("a")
        waiting = asyncio.create_task(wf.wait("a", a, Status.DONE))
        await settle()
        waits = [name for name in streamer.receivers if name.startswith("await-")]
        assert len(waits) == 1  # the run-state topic's
        await wf.callback("a", Status.STARTED)
        async with asyncio.timeout(WAIT):
            assert (await waiting).status is Status.DONE


async def test_waits_found_by_the_store_and_by_events_are_counted() -> None:
    env = new_env()
    wf = env.build(callback_flow())
    metrics = wf._engine.telemetry.metrics
    store_before = metrics.waits_found_by_store._value.get()
    event_before = metrics.waits_found_by_event._value.get()
    async with wf:
        a = await wf.trigger("a")
        waiting = asyncio.create_task(wf.wait("a", a, Status.DONE))
        await settle()
        await wf.callback("a", Status.STARTED)
        await waiting
        await wf.wait("a", a, Status.DONE)  # already there
    assert metrics.waits_found_by_event._value.get() - event_before == 1
    assert metrics.waits_found_by_store._value.get() - store_before == 1
