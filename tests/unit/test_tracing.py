"""OpenTelemetry: every step of a run lands in the trace of the code that triggered it."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conveyor import Builder, Run
from conveyor.abc import topic
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.testing import run_until_idle


class Status(enum.IntEnum):
    UNKNOWN = 0
    CREATED = 1
    CHECKED = 2
    AWAITING = 3
    DONE = 4


@dataclass
class Obj:
    n: int = 0


async def check(run: Run[Obj, Status]) -> Status:
    return Status.CHECKED


def wait_for_approval(run: Run[Obj, Status]) -> Status:
    return Status.AWAITING


async def test_trace_context_flows_from_trigger_through_every_step_and_callback() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    b = Builder("traced", Obj, Status)
    b.add_step(Status.CREATED, check, Status.CHECKED)
    b.add_step(Status.CHECKED, wait_for_approval, Status.AWAITING)
    b.add_callback(Status.AWAITING, lambda run, payload: Status.DONE, Status.DONE)
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        tracing=True,
        tracer_provider=provider,
    )
    async with wf, asyncio.timeout(10):
        with tracer.start_as_current_span("http request") as root:
            run_id = await wf.trigger("fid")
        await wf.wait("fid", run_id, Status.AWAITING)
        with tracer.start_as_current_span("webhook"):
            await wf.callback("fid", Status.AWAITING, b"{}")
        await run_until_idle(wf)

    spans = {s.name: s for s in exporter.get_finished_spans()}
    trace_id = root.get_span_context().trace_id
    step1 = spans["conveyor step created-consumer-1-of-1"]
    step2 = spans["conveyor step checked-consumer-1-of-1"]
    # The first step is a child of the triggering span; the second a child of the first
    assert step1.context is not None
    assert step2.context is not None
    assert step1.context.trace_id == trace_id
    assert step1.parent is not None
    assert step1.parent.span_id == root.get_span_context().span_id
    assert step2.context.trace_id == trace_id
    assert step2.parent is not None
    assert step2.parent.span_id == step1.context.span_id
    assert step1.attributes is not None
    assert step1.attributes["conveyor.run_id"] == run_id
    assert "conveyor callback AWAITING" in spans


@pytest.mark.parametrize("tracing", [False, True])
async def test_events_carry_trace_context_only_when_tracing_is_on(tracing: bool) -> None:
    provider = TracerProvider()
    streamer = MemoryEventStreamer()
    b = Builder("untraced", Obj, Status)
    b.add_step(Status.CREATED, check, Status.CHECKED)
    wf = b.build(
        streamer,
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        tracing=tracing,
        tracer_provider=provider,
    )
    async with wf, asyncio.timeout(10):
        with provider.get_tracer("test").start_as_current_span("caller"):
            await wf.trigger("fid")
        receiver = await streamer.new_receiver(topic("untraced", Status.CREATED), "inspect")
        (event,) = await receiver.recv()
    assert ("traceparent" in event.headers) is tracing
