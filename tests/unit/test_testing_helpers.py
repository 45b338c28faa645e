"""conveyor.testing: a fake clock and waits on conditions, so tests never sleep."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import Builder, Marker, Run, RunState
from conveyor.adapters.memory import (
    MemoryEventReceiver,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)
from conveyor.testing import FakeClock, new_testing_run, require, run_until_idle, wait_for

from ._support import WAIT, Doc, Env, Status, linear, settle

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- FakeClock


def test_fake_clock_starts_where_told_and_needs_a_timezone() -> None:
    assert FakeClock(T0).now() == T0
    assert FakeClock().now().tzinfo is not None
    with pytest.raises(ValueError, match="timezone"):
        FakeClock(datetime(2030, 1, 1))


def test_set_and_advance_move_forward_only() -> None:
    clock = FakeClock(T0)
    assert clock.advance(60) == T0 + timedelta(minutes=1)
    assert clock.advance(timedelta(hours=1)) == T0 + timedelta(hours=1, minutes=1)
    clock.set(T0 + timedelta(days=1))
    assert clock.now() == T0 + timedelta(days=1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(T0)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone"):
        clock.set(datetime(2031, 1, 1))
    assert clock.now() == T0 + timedelta(days=1)


async def test_sleep_until_wakes_at_the_deadline_not_before() -> None:
    clock = FakeClock(T0)
    sleeper = asyncio.create_task(clock.sleep_until(T0 + timedelta(seconds=10)))
    await settle(10)
    assert clock.sleepers() == 1
    assert clock.next_deadline() == T0 + timedelta(seconds=10)

    clock.advance(9.999)
    await settle(10)
    assert not sleeper.done()

    clock.advance(0.001)
    async with asyncio.timeout(WAIT):
        await sleeper
    assert clock.sleepers() == 0
    assert clock.next_deadline() is None


async def test_sleep_until_a_past_deadline_returns_at_once() -> None:
    clock = FakeClock(T0)
    async with asyncio.timeout(WAIT):
        await clock.sleep_until(T0)
        await clock.sleep_until(T0 - timedelta(days=1))
    assert clock.sleepers() == 0


async def test_one_advance_wakes_every_sleeper_now_due_in_order() -> None:
    clock = FakeClock(T0)
    woke: list[int] = []

    async def sleep(seconds: int) -> None:
        await clock.sleep_until(T0 + timedelta(seconds=seconds))
        woke.append(seconds)

    tasks = [asyncio.create_task(sleep(s)) for s in (30, 10, 20, 40)]
    await settle(10)
    clock.advance(35)
    await settle(10)
    assert woke == [10, 20, 30]
    clock.advance(5)
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*tasks)
    assert woke == [10, 20, 30, 40]


async def test_a_cancelled_sleeper_is_not_counted() -> None:
    clock = FakeClock(T0)
    sleeper = asyncio.create_task(clock.sleep_until(T0 + timedelta(hours=1)))
    await settle(10)
    sleeper.cancel()
    await settle(10)
    assert clock.sleepers() == 0
    clock.advance(3600)  # waking a cancelled sleeper is harmless


# --------------------------------------------------------------------------- require


async def test_require_returns_the_run_at_a_status_it_passed_through(env: Env) -> None:
    async def name_it(run: Run[Doc, Status]) -> Status:
        run.object.name = "named"
        return Status.MIDDLE

    async def finish(run: Run[Doc, Status]) -> Status:
        run.object.items.append("finished")
        return Status.DONE

    b = Builder("require", Doc, Status)
    b.add_step(Status.STARTED, name_it, Status.MIDDLE)
    b.add_step(Status.MIDDLE, finish, Status.DONE)
    wf = env.build(b)
    async with wf:
        await wf.trigger("fid")
        done = await require(wf, "fid", Status.DONE, Doc(name="named", items=["finished"]))
        # MIDDLE was passed before this call: require reads the run's history
        middle = await require(wf, "fid", Status.MIDDLE, Doc(name="named"))
    assert done.status is Status.DONE
    assert middle.status is Status.MIDDLE
    assert middle.version == 2


async def test_require_raises_assertion_error_on_a_different_object(env: Env) -> None:
    wf = env.build(linear("require-mismatch"))
    async with wf:
        await wf.trigger("fid", initial=Doc(name="actual"))
        with pytest.raises(AssertionError, match="actual"):
            await require(wf, "fid", Status.DONE, Doc(name="expected"), timeout=WAIT)


async def test_require_times_out_if_the_status_is_never_reached(env: Env) -> None:
    b = Builder("require-timeout", Doc, Status)
    b.add_callback(Status.STARTED, lambda run, payload: Status.DONE, Status.DONE)
    wf = env.build(b)
    async with wf:
        await wf.trigger("fid")
        with pytest.raises(TimeoutError):
            await require(wf, "fid", Status.DONE, Doc(), timeout=0.05)
        with pytest.raises(TimeoutError):
            await require(wf, "nobody", Status.STARTED, Doc(), timeout=0.05)


async def test_require_refuses_a_status_outside_the_graph(env: Env) -> None:
    wf = env.build(linear("require-graph"))
    async with wf:
        with pytest.raises(ValueError, match="not part of workflow"):
            await require(wf, "fid", Status.UNUSED, Doc())


# --------------------------------------------------------------------------- wait_for


async def test_wait_for_waits_until_the_predicate_holds(env: Env) -> None:
    wf = env.build(linear("wait-for"))
    async with wf:
        await wf.trigger("fid")
        run = await wait_for(wf, "fid", lambda r: r.status is Status.DONE, timeout=WAIT)

        async def completed(r: Run[Doc, Status]) -> bool:
            return r.run_state is RunState.COMPLETED

        again = await wait_for(wf, "fid", completed, timeout=WAIT)
    assert run.status is Status.DONE
    assert again.version == run.version == 3


async def test_wait_for_times_out(env: Env) -> None:
    wf = env.build(linear("wait-for-timeout"))
    async with wf:
        await wf.trigger("fid")
        with pytest.raises(TimeoutError):
            await wait_for(wf, "fid", lambda r: r.status is Status.UNUSED, timeout=0.05)


# --------------------------------------------------------------------------- new_testing_run


async def approve_order(run: Run[Doc, Status]) -> Status | Marker:
    """A step under test: pause big orders, move small ones on."""
    if len(run.object.items) > 2:
        return run.pause("too many items for automatic approval")
    run.object.name = "approved"
    return Status.MIDDLE


async def test_new_testing_run_unit_tests_a_step_function() -> None:
    small = new_testing_run(Doc(items=["a"]), Status.STARTED)
    assert await approve_order(small) is Status.MIDDLE
    assert small.object.name == "approved"

    big = new_testing_run(Doc(items=["a", "b", "c"]), Status.STARTED, foreign_id="order-7")
    result = await approve_order(big)
    assert result == big.pause("too many items for automatic approval")
    assert big.foreign_id == "order-7"


def test_new_testing_run_fills_in_a_plausible_record() -> None:
    run = new_testing_run(Doc(), Status.MIDDLE, run_id="r1", version=7, now=T0)
    assert (run.run_id, run.version, run.idempotency_key) == ("r1", 7, "r1:7")
    assert run.run_state is RunState.RUNNING
    assert run.meta.status_description == "MIDDLE"
    assert run.created_at == run.updated_at == T0


# --------------------------------------------------------------------------- run_until_idle


async def test_run_until_idle_returns_once_all_work_is_done(env: Env) -> None:
    wf = env.build(linear("idle-helper"))
    async with wf:
        for i in range(10):
            await wf.trigger(f"fid-{i}")
        await run_until_idle(wf, timeout=WAIT)
        # No waiting was needed afterwards: everything is already there
        records = env.store.all_records()
    assert [r.run_state for r in records] == [RunState.COMPLETED] * 10
    assert env.store.outbox_size() == 0


async def test_run_until_idle_times_out_while_a_step_is_busy(env: Env) -> None:
    release = asyncio.Event()

    async def stuck(run: Run[Doc, Status]) -> Status:
        await release.wait()
        return Status.DONE

    b = Builder("busy", Doc, Status)
    b.add_step(Status.STARTED, stuck, Status.DONE)
    wf = env.build(b)
    async with wf:
        await wf.trigger("fid")
        with pytest.raises(TimeoutError):
            await run_until_idle(wf, timeout=0.05)
        release.set()
        await run_until_idle(wf, timeout=WAIT)


async def test_run_until_idle_needs_a_workflow() -> None:
    with pytest.raises(ValueError, match="at least one"):
        await run_until_idle()


class _SlowToOpen(MemoryEventStreamer):
    """A memory streamer whose receivers take until ``opened`` is set to open (a broker's
    consumer group being created, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = asyncio.Event()
        self.both_opening = asyncio.Event()
        self.opening = 0

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> MemoryEventReceiver:
        self.opening += 1
        if self.opening == 2:  # the two step consumers
            self.both_opening.set()
        await self.opened.wait()
        return await super().new_receiver(
            topic, name, stream_from_latest=stream_from_latest, poll_interval=poll_interval
        )


async def test_run_until_idle_waits_for_receivers_still_opening() -> None:
    # Given a workflow whose step consumers are still opening their receivers, with a run
    # triggered, and the receivers opening shortly
    streamer = _SlowToOpen()
    store = MemoryRecordStore()
    wf = linear("slow-open").build(streamer, store, MemoryRoleScheduler())
    async with wf:
        run_id = await wf.trigger("fid")
        await asyncio.wait_for(streamer.both_opening.wait(), WAIT)
        asyncio.get_running_loop().call_later(0.05, streamer.opened.set)

        # When the test waits until the workflow is idle
        await run_until_idle(wf, timeout=WAIT)

        # Then the run went through: idleness was not judged before the receivers opened
        assert (await store.lookup(run_id)).status == Status.DONE
