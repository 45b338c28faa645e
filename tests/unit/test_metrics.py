"""Prometheus metrics: the original's names and labels, on a registry the user passes in."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from conveyor import Builder, Marker, Options, Run, State, Workflow
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.testing import FakeClock, run_until_idle


class Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    MIDDLE = 2
    END = 3


@dataclass
class Obj:
    attempts: int = 0


def build(registry: CollectorRegistry, clock: FakeClock) -> Workflow[Obj, Status]:
    failures = {"left": 2}

    async def flaky(run: Run[Obj, Status]) -> Status:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("flaky")
        return Status.MIDDLE

    async def finish(run: Run[Obj, Status]) -> Status:
        return Status.END

    b = Builder("metrics demo", Obj, Status)
    b.add_step(Status.STARTED, flaky, Status.MIDDLE).with_options(parallel_count=2)
    b.add_step(Status.MIDDLE, finish, Status.END)
    return b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        clock=clock,
        metrics_registry=registry,
        default_options=Options(err_backoff=0.001),
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, {"workflow_name": "metrics demo", **labels})
    return 0.0 if got is None else got


async def test_metrics_are_read_back_from_the_registry_after_a_run() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    wf = build(registry, clock)
    async with wf, asyncio.timeout(10):
        await wf.trigger("fid-0")  # its first two attempts fail, one batch each
        await run_until_idle(wf)
        for i in range(1, 4):
            await wf.trigger(f"fid-{i}")
        await run_until_idle(wf)
        # Process states: Running while held
        assert value(
            registry, "workflow_process_states", process_name="middle-consumer-1-of-1"
        ) == float(State.RUNNING)
    # Shutdown after stop
    assert value(registry, "workflow_process_states", process_name="outbox-consumer") == float(
        State.SHUTDOWN
    )
    # Two failures backed off (in whichever shard got the failing events)
    errors = sum(
        value(registry, "workflow_process_error_count_total", process_name=name)
        for name in ("started-consumer-1-of-2", "started-consumer-2-of-2")
    )
    assert errors == 2
    # Run-state changes: 4 runs went Initiated -> Running -> Completed
    changes = "workflow_run_state_changes_total"
    assert (
        value(registry, changes, previous_run_state="Initiated", current_run_state="Running") == 4
    )
    assert (
        value(registry, changes, previous_run_state="Running", current_run_state="Completed") == 4
    )
    # Each event of the 2-shard step was filtered out by exactly one shard
    filtered = sum(
        value(
            registry,
            "workflow_process_skipped_events_count_total",
            process_name=name,
            reason="filtered out",
        )
        for name in ("started-consumer-1-of-2", "started-consumer-2-of-2")
    )
    assert filtered >= 4
    # Latency: one observation per handled event of the single-shard step
    assert (
        value(
            registry,
            "workflow_process_latency_seconds_count",
            process_name="middle-consumer-1-of-1",
        )
        == 4
    )
    # Lag is measured by the workflow's clock: the fake clock never moved, so lag is 0
    assert (
        value(registry, "workflow_process_lag_seconds", process_name="middle-consumer-1-of-1") == 0
    )
    assert value(registry, "workflow_process_lag_alert", process_name="middle-consumer-1-of-1") == 0


async def test_lag_follows_the_workflow_clock_and_raises_the_alert() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()

    async def step(run: Run[Obj, Status]) -> Status:
        return Status.END

    b = Builder("metrics demo", Obj, Status)
    b.add_step(Status.STARTED, step, Status.END).with_options(lag_alert=60, consume_lag=3600)
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        clock=clock,
        metrics_registry=registry,
    )
    async with wf, asyncio.timeout(10):
        await wf.trigger("fid")
        await run_until_idle(wf)
        clock.advance(7200)  # the event is now two hours old
        await run_until_idle(wf)
    name = "started-consumer-1-of-1"
    assert value(registry, "workflow_process_lag_seconds", process_name=name) == 7200
    assert value(registry, "workflow_process_lag_alert", process_name=name) == 1


async def test_two_workflows_share_one_registry() -> None:
    registry = CollectorRegistry()
    build(registry, FakeClock())
    build(registry, FakeClock())  # registering the same names twice must not raise


async def test_a_step_that_skips_counts_a_skipped_event_with_the_originals_reason() -> None:
    # Given a step that skips every other run
    registry = CollectorRegistry()

    async def skip_odd(run: Run[Obj, Status]) -> Status | Marker:
        if run.foreign_id.endswith(("1", "3")):
            return run.skip()
        return Status.MIDDLE

    b = Builder("metrics demo", Obj, Status)
    b.add_step(Status.STARTED, skip_odd, Status.MIDDLE)
    wf = b.build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), metrics_registry=registry
    )
    # When four runs go through it
    async with wf:
        for i in range(4):
            await wf.trigger(f"fid-{i}")
        await run_until_idle(wf)
    # Then the two skips are counted under "next value specified skip", as in the original
    skipped = value(
        registry,
        "workflow_process_skipped_events_count_total",
        process_name="started-consumer-1-of-1",
        reason="next value specified skip",
    )
    assert skipped == 2
