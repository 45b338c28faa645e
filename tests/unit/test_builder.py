"""Builder: the graph rules checked at build time, and how step options are merged."""

from __future__ import annotations

import asyncio
import enum
from datetime import timedelta
from typing import Any, cast

import pytest

from conveyor import Builder, BuildError, Options, Run, RunState, State, StepBuilder
from conveyor.testing import wait_for

from ._support import (
    WAIT,
    Doc,
    Env,
    Status,
    adapters,
    linear,
    never_called,
    to_done,
    to_middle,
)


def test_a_second_step_for_one_status_is_refused() -> None:
    b = Builder("dup", Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    with pytest.raises(
        BuildError, match="a step from STARTED is already defined; one step per status"
    ):
        b.add_step(Status.STARTED, to_done, Status.DONE)


def test_the_reserved_status_zero_cannot_be_a_node() -> None:
    b = Builder("reserved", Doc, Status)
    with pytest.raises(BuildError, match="reserved and cannot be a 'from' status"):
        b.add_step(Status.UNKNOWN, to_middle, Status.MIDDLE)
    with pytest.raises(BuildError, match="reserved and cannot be a 'to' status"):
        b.add_step(Status.STARTED, to_middle, Status.UNKNOWN)
    with pytest.raises(BuildError, match="reserved and cannot be a 'to' status"):
        b.add_callback(Status.STARTED, never_called, Status.UNKNOWN)


def test_a_graph_without_a_starting_point_is_refused() -> None:
    # Given a lone self-loop: every node has an incoming edge
    b = Builder("loop", Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.STARTED)
    # Then
    with pytest.raises(BuildError, match="at least one starting point"):
        b.build(*adapters())


def test_an_empty_workflow_is_refused() -> None:
    with pytest.raises(BuildError):
        Builder("empty", Doc, Status).build(*adapters())


class PlainEnum(enum.Enum):
    A = 1


@pytest.mark.parametrize("status_type", [PlainEnum, int, str])
def test_the_status_type_must_be_an_int_enum(status_type: Any) -> None:
    with pytest.raises(BuildError, match="IntEnum"):
        Builder("x", Doc, status_type)


def test_a_workflow_needs_a_name() -> None:
    with pytest.raises(BuildError):
        Builder("", Doc, Status)


def test_a_step_needs_a_destination() -> None:
    b = Builder("nodest", Doc, Status)
    with pytest.raises(BuildError, match="destination"):
        b.add_step(Status.STARTED, to_middle)
    with pytest.raises(BuildError, match="destination"):
        b.add_callback(Status.STARTED, never_called)


def test_statuses_must_be_members_of_the_enum() -> None:
    b = Builder("members", Doc, Status)
    with pytest.raises(BuildError, match="not a member"):
        b.add_step(Status.STARTED, to_middle, 77)  # type: ignore[arg-type]


def test_a_step_function_must_be_callable() -> None:
    b = Builder("callable", Doc, Status)
    with pytest.raises(BuildError, match="not callable"):
        b.add_step(Status.STARTED, "nope", Status.MIDDLE)  # type: ignore[arg-type]


def test_self_loops_are_allowed_when_there_is_a_starting_point() -> None:
    b = Builder("selfloop", Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    b.add_step(Status.MIDDLE, to_done, Status.MIDDLE, Status.DONE)
    b.build(*adapters())


def test_several_callbacks_for_one_status_are_allowed() -> None:
    b = Builder("callbacks", Doc, Status)
    b.add_callback(Status.STARTED, never_called, Status.MIDDLE)
    b.add_callback(Status.STARTED, never_called, Status.DONE)
    b.build(*adapters())


async def test_default_starting_point_is_the_first_node_without_incoming_edges(env: Env) -> None:
    # Given two starting nodes, MIDDLE declared before STARTED (DONE has incoming edges)
    b = Builder("starting", Doc, Status)
    b.add_step(Status.MIDDLE, to_done, Status.DONE)
    b.add_step(Status.STARTED, to_done, Status.DONE)
    wf = env.build(b)
    async with wf:
        # When
        rid = await wf.trigger("fid")
        # Then
        first = env.store.snapshots(wf.name, "fid", rid)[0]
        assert first.status == Status.MIDDLE


async def test_a_node_declared_first_but_reached_by_an_edge_is_not_the_start(env: Env) -> None:
    # Given MIDDLE declared first, but STARTED -> MIDDLE declared later
    b = Builder("declared-later", Doc, Status)
    b.add_step(Status.MIDDLE, to_done, Status.DONE)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    wf = env.build(b)
    async with wf:
        rid = await wf.trigger("fid")
        assert (await env.store.lookup(rid)).status == Status.STARTED


def test_with_options_returns_the_step_builder_for_chaining() -> None:
    b = Builder("chain", Doc, Status)
    sb = b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    assert isinstance(sb, StepBuilder)
    assert sb.with_options(parallel_count=2) is sb


async def test_step_options_override_defaults_field_by_field(env: Env) -> None:
    # Given defaults that pause after 2 errors, and a step that only sets parallel_count
    # (the original's WithDefaultOptions zeroing would lose pause_after_err_count)
    async def always_fails(run: Run[Doc, Status]) -> Status:
        raise RuntimeError("boom")

    b = Builder("merge", Doc, Status)
    b.add_step(Status.STARTED, always_fails, Status.DONE).with_options(parallel_count=2)
    wf = env.build(b, default_options=Options(err_backoff=0.001, pause_after_err_count=2))
    async with wf:
        # When
        await wf.trigger("fid")
        # Then the step has two shards and still pauses after the defaults' 2 errors
        assert "started-consumer-2-of-2" in wf.process_names()
        run = await wait_for(wf, "fid", lambda r: r.run_state is RunState.PAUSED, timeout=WAIT)
        assert run.meta.run_state_reason.startswith(
            "max error retry threshold hit - automatically paused after 2 failed attempts"
        )


def test_options_over_takes_unset_fields_from_the_base() -> None:
    base = Options(err_backoff=0.25, pause_after_err_count=4, consume_lag=10)
    merged = Options(parallel_count=5).over(base)
    assert merged == Options(
        parallel_count=5, err_backoff=0.25, pause_after_err_count=4, consume_lag=10
    )


def test_later_with_options_calls_override_field_by_field() -> None:
    b = Builder("twice", Doc, Status)
    sb = b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    sb.with_options(parallel_count=3, err_backoff=2.0)
    sb.with_options(err_backoff=0.5)
    wf = b.build(*adapters(), default_options=Options(lag_alert=7))
    assert "started-consumer-3-of-3" in wf.process_names()


def test_durations_accept_timedelta() -> None:
    opts = Options(
        polling_frequency=timedelta(milliseconds=10),
        err_backoff=timedelta(seconds=2),
        lag_alert=timedelta(minutes=1),
        consume_lag=timedelta(hours=1),
    )
    assert opts == Options(
        polling_frequency=0.01, err_backoff=2.0, lag_alert=60.0, consume_lag=3600
    )
    b = Builder("td", Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE).with_options(
        consume_lag=timedelta(seconds=3)
    )
    b.build(*adapters(), pause_retry=timedelta(minutes=5))


@pytest.mark.parametrize("field", ["polling_frequency", "err_backoff", "lag_alert", "consume_lag"])
def test_negative_durations_are_rejected(field: str) -> None:
    with pytest.raises(ValueError, match="negative"):
        Options(**cast(dict[str, Any], {field: -1.0}))
    b = Builder("neg", Doc, Status)
    sb = b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    with pytest.raises(ValueError, match="negative"):
        sb.with_options(**cast(dict[str, Any], {field: timedelta(seconds=-1)}))


@pytest.mark.parametrize("field", ["parallel_count", "pause_after_err_count"])
def test_negative_counts_are_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Options(**cast(dict[str, Any], {field: -1}))


@pytest.mark.parametrize("value", [0, -1.0, timedelta(seconds=-5)])
def test_pause_retry_must_be_positive(value: Any) -> None:
    with pytest.raises(BuildError, match="pause_retry"):
        linear().build(*adapters(), pause_retry=value)


def test_build_returns_a_workflow_that_is_not_running() -> None:
    b = Builder("notrunning", Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    wf = b.build(*adapters())
    assert wf.name == "notrunning"
    assert wf.object_type is Doc
    assert wf.status_type is Status
    assert set(wf.states().values()) == {State.UNKNOWN}


def test_building_needs_no_event_loop() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    b = Builder("noloop", Doc, Status)
    b.add_step(Status.STARTED, to_middle, Status.MIDDLE)
    b.build(*adapters())


async def test_changing_a_builder_after_build_leaves_the_built_workflow_as_it_was(
    env: Env,
) -> None:
    # Given a workflow built from STARTED -> MIDDLE -> DONE
    b = linear("frozen")
    wf = env.build(b)
    # When the builder gets a step from DONE (which would make DONE non-terminal), new
    # options, and a callback
    b.add_step(Status.DONE, to_done, Status.OTHER_END)
    b.add_callback(Status.MIDDLE, never_called, Status.OTHER_END)
    # Then the built workflow's definition did not change
    assert wf.definition.graph.is_terminal(Status.DONE)
    assert Status.DONE not in wf.definition.steps
    assert Status.MIDDLE not in wf.definition.callbacks
    assert Status.OTHER_END not in wf.definition.graph
    # And a run still completes at DONE
    async with wf:
        rid = await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            done = await wf.wait("fid", rid, Status.DONE)
    assert done.run_state is RunState.COMPLETED


def test_a_definition_cannot_be_changed() -> None:
    # Given a built workflow's definition
    b = linear("frozen")
    definition = b.definition()
    # Then neither its fields nor its mappings accept changes
    with pytest.raises(AttributeError):
        definition.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        definition.steps[Status.DONE] = definition.steps[Status.STARTED]  # type: ignore[index]
