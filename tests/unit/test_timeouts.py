"""Timeouts: time moves runs, under the workflow's clock, without polling blindly."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from conveyor import (
    Builder,
    BuildError,
    OutboxOptions,
    Run,
    RunState,
    Workflow,
    duration_timer,
    time_timer,
)
from conveyor.adapters.memory import (
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from conveyor.testing import FakeClock, await_timeout_insert, run_until_idle


class Order(enum.IntEnum):
    UNKNOWN = 0
    PLACED = 1
    AWAITING_PAYMENT = 2
    PAID = 3
    EXPIRED = 4
    REMINDED = 5


@dataclass
class Cart:
    seen_now: list[str] = field(default_factory=list)
    reminders: int = 0


async def place(run: Run[Cart, Order]) -> Order:
    return Order.AWAITING_PAYMENT


async def expire(run: Run[Cart, Order], now: datetime) -> Order:
    run.object.seen_now.append(now.isoformat())
    return Order.EXPIRED


def paid(run: Run[Cart, Order], payload: bytes) -> Order:
    return Order.PAID


def build(
    clock: FakeClock,
    *,
    timeouts: list[tuple[object, object, Order]] | None = None,
    poll: float = 3600.0,
    pause_retry: float | None = 3600.0,
) -> tuple[Workflow[Cart, Order], MemoryTimeoutStore]:
    b = Builder("orders", Cart, Order)
    b.add_step(Order.PLACED, place, Order.AWAITING_PAYMENT)
    b.add_callback(Order.AWAITING_PAYMENT, paid, Order.PAID)
    for timer, fn, to in timeouts or [(duration_timer(3600), expire, Order.EXPIRED)]:
        b.add_timeout(Order.AWAITING_PAYMENT, timer, fn, to).with_options(  # type: ignore[arg-type]
            polling_frequency=poll
        )
    store = MemoryTimeoutStore()
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=store,
        clock=clock,
        outbox=OutboxOptions(polling_frequency=3600),
        pause_retry=pause_retry,
    )
    return wf, store


async def test_building_timeouts_without_a_timeout_store_is_a_build_error() -> None:
    b = Builder("orders", Cart, Order)
    b.add_timeout(Order.AWAITING_PAYMENT, duration_timer(1), expire, Order.EXPIRED)
    with pytest.raises(BuildError, match="build it with a timeout_store"):
        b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())


async def test_timeouts_cannot_be_sharded_or_lagged() -> None:
    b = Builder("orders", Cart, Order)
    t = b.add_timeout(Order.AWAITING_PAYMENT, duration_timer(1), expire, Order.EXPIRED)
    with pytest.raises(BuildError, match="timeouts cannot run in parallel"):
        t.with_options(parallel_count=2)
    with pytest.raises(BuildError, match="consume lag"):
        t.with_options(consume_lag=1)


async def test_timeout_fires_once_the_clock_is_advanced_past_its_due_time() -> None:
    # Given a run waiting for payment with a one-hour timeout
    clock = FakeClock(datetime(2023, 4, 9, 8, 30, tzinfo=UTC))
    wf, store = build(clock)
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("o-1")
        t = await await_timeout_insert(wf, "o-1", run_id, Order.AWAITING_PAYMENT)
        assert t.expire_at == clock.now() + timedelta(hours=1)
        # When less than an hour passes, nothing happens
        clock.advance(timedelta(minutes=59))
        await run_until_idle(wf)
        assert (await wf.lookup(run_id)).status is Order.AWAITING_PAYMENT
        # When the hour is up (the boundary is inclusive: expire_at <= now)
        clock.advance(timedelta(minutes=1))
        run = await wf.wait("o-1", run_id, Order.EXPIRED)
    # Then the timeout function ran with the clock's time and moved the run
    assert run.run_state is RunState.COMPLETED
    assert run.object.seen_now == [datetime(2023, 4, 9, 9, 30, tzinfo=UTC).isoformat()]
    assert await store.list("orders") == []


async def test_poller_sleeps_until_the_next_due_time_instead_of_polling() -> None:
    # The fallback poll is an hour of real time: only the clock can wake the poller.
    clock = FakeClock()
    wf, _ = build(clock, poll=3600.0)
    async with wf, asyncio.timeout(5):
        run_id = await wf.trigger("o-1")
        await await_timeout_insert(wf, "o-1", run_id, Order.AWAITING_PAYMENT)
        await run_until_idle(wf)
        assert clock.sleepers() >= 1
        clock.advance(3600)
        await wf.wait("o-1", run_id, Order.EXPIRED)


async def test_timeout_is_cancelled_when_the_run_moves_on() -> None:
    clock = FakeClock()
    wf, store = build(clock)
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("o-1")
        await await_timeout_insert(wf, "o-1", run_id, Order.AWAITING_PAYMENT)
        # When the customer pays first
        await wf.callback("o-1", Order.AWAITING_PAYMENT, b"{}")
        await wf.wait("o-1", run_id, Order.PAID)
        clock.advance(7200)
        await run_until_idle(wf)
    # Then the due timeout was dropped without firing
    run = await wf.lookup(run_id)
    assert run.status is Order.PAID
    assert run.object.seen_now == []
    assert await store.list("orders") == []


async def test_paused_run_keeps_its_timeout_until_resumed() -> None:
    clock = FakeClock()
    wf, store = build(clock, pause_retry=None)  # no automatic resume during the test
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("o-1")
        await await_timeout_insert(wf, "o-1", run_id, Order.AWAITING_PAYMENT)
        await run_until_idle(wf)
        await wf.pause(run_id, "manual review")
        clock.advance(7200)
        await run_until_idle(wf)
        # While paused, the due timeout waits
        paused = await wf.lookup(run_id)
        assert (paused.status, paused.run_state) == (Order.AWAITING_PAYMENT, RunState.PAUSED)
        assert len(await store.list("orders")) == 1
        # After resuming, it fires
        await wf.resume(run_id)
        run = await wf.wait("o-1", run_id, Order.EXPIRED)
    assert run.run_state is RunState.COMPLETED


async def test_timeout_function_that_skips_completes_its_timeout() -> None:
    calls = 0

    async def not_yet(run: Run[Cart, Order], now: datetime) -> object:
        nonlocal calls
        calls += 1
        return run.skip()

    clock = FakeClock()
    wf, store = build(clock, timeouts=[(duration_timer(60), not_yet, Order.EXPIRED)])
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("o-1")
        await await_timeout_insert(wf, "o-1", run_id, Order.AWAITING_PAYMENT)
        clock.advance(60)
        await run_until_idle(wf)
        clock.advance(60)
        await run_until_idle(wf)
    # The skip is final: it fired once and is no longer pending
    assert calls == 1
    assert await store.list("orders") == []
    assert (await wf.lookup(run_id)).status is Order.AWAITING_PAYMENT


async def test_several_timeouts_on_one_status_do_not_conflict() -> None:
    async def remind(run: Run[Cart, Order], now: datetime) -> Order:
        run.object.reminders += 1
        return Order.REMINDED

    clock = FakeClock()
    wf, store = build(
        clock,
        timeouts=[
            (duration_timer(3600), expire, Order.EXPIRED),
            (duration_timer(600), remind, Order.REMINDED),
        ],
    )
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("o-1")
        await run_until_idle(wf)
        assert len(await store.list("orders")) == 2
        # When both are due at once, the earlier-created one per ID order fires; the other
        # sees the run has moved on and is dropped (no version conflict, no retry loop).
        clock.advance(3600)
        await run_until_idle(wf)
    run = await wf.lookup(run_id)
    assert run.status in (Order.EXPIRED, Order.REMINDED)
    assert run.run_state is RunState.COMPLETED
    assert await store.list("orders") == []


async def test_timer_returning_none_creates_no_timeout() -> None:
    def only_for_big_carts(run: Run[Cart, Order], now: datetime) -> datetime | None:
        return None

    clock = FakeClock()
    wf, store = build(clock, timeouts=[(only_for_big_carts, expire, Order.EXPIRED)])
    async with wf, asyncio.timeout(10):
        await wf.trigger("o-1")
        await run_until_idle(wf)
    assert await store.list("orders") == []


async def test_fixed_time_timer() -> None:
    when = datetime(2024, 1, 2, 12, tzinfo=UTC)
    clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    wf, _ = build(clock, timeouts=[(time_timer(when), expire, Order.EXPIRED)])
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("o-1")
        t = await await_timeout_insert(wf, "o-1", run_id, Order.AWAITING_PAYMENT)
        assert t.expire_at == when
        clock.set(when)
        run = await wf.wait("o-1", run_id, Order.EXPIRED)
    assert run.object.seen_now == [when.isoformat()]


async def test_creating_a_timeout_twice_for_one_version_is_idempotent() -> None:
    store = MemoryTimeoutStore()
    now = datetime(2024, 1, 1, tzinfo=UTC)
    first = await store.create("wf", "fid", "rid", 2, now, created_at=now, record_version=3)
    again = await store.create("wf", "fid", "rid", 2, now, created_at=now, record_version=3)
    other_version = await store.create("wf", "fid", "rid", 2, now, created_at=now, record_version=5)
    assert first == again == 1
    assert other_version == 2
    assert [t.id for t in await store.list("wf")] == [1, 2]


async def test_timeout_function_errors_pause_the_run_after_the_threshold() -> None:
    attempts = 0

    async def broken(run: Run[Cart, Order], now: datetime) -> Order:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("payment provider down")

    clock = FakeClock()
    b = Builder("orders", Cart, Order)
    b.add_step(Order.PLACED, place, Order.AWAITING_PAYMENT)
    b.add_timeout(Order.AWAITING_PAYMENT, duration_timer(60), broken, Order.EXPIRED).with_options(
        pause_after_err_count=3, err_backoff=0.001
    )
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        clock=clock,
    )
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("o-1")
        await await_timeout_insert(wf, "o-1", run_id, Order.AWAITING_PAYMENT)
        clock.advance(60)
        while (await wf.lookup(run_id)).run_state is not RunState.PAUSED:
            await wf.record_store.wait_for_change(0.1)  # type: ignore[attr-defined]
    run = await wf.lookup(run_id)
    assert attempts == 3
    assert run.meta.run_state_reason == (
        "max error retry threshold hit - automatically paused after 3 failed attempts; "
        "last error: RuntimeError: payment provider down"
    )
