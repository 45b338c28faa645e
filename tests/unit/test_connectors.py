"""Connectors: outside events start runs, sharded by a stable hash, none dropped."""

from __future__ import annotations

import asyncio
import enum
from collections import Counter
from dataclasses import dataclass

import pytest

from conveyor import (
    Builder,
    BuildError,
    ConnectorEvent,
    Options,
    Run,
    Workflow,
    WorkflowInProgress,
)
from conveyor.abc.kit import fnv1a64
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
)
from conveyor.testing import run_until_idle


class Signup(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    EMAIL_SET = 2


@dataclass
class User:
    uid: str = ""
    email: str = ""


async def set_email(run: Run[User, Signup]) -> Signup:
    run.object.email = "connector@workflow.com"
    return Signup.EMAIL_SET


def events(n: int) -> list[ConnectorEvent]:
    return [ConnectorEvent(id=f"evt-{i}", foreign_id=f"user-{i}") for i in range(n)]


def build(
    connector: MemoryConnector,
    calls: Counter[str],
    *,
    parallel: int | None = None,
    defaults: Options | None = None,
    fail_first: bool = False,
) -> Workflow[User, Signup]:
    failed: set[str] = set()

    async def start_run(wf: Workflow[User, Signup], event: ConnectorEvent) -> None:
        calls[event.id] += 1
        if fail_first and event.id not in failed:
            failed.add(event.id)
            raise RuntimeError("upstream hiccup")
        try:
            await wf.trigger(event.foreign_id, initial=User(uid=event.foreign_id))
        except WorkflowInProgress:
            pass  # redelivered: the run exists

    b = Builder("example", User, Signup)
    b.add_step(Signup.STARTED, set_email, Signup.EMAIL_SET)
    c = b.add_connector("consume other stream", connector, start_run)
    if parallel is not None:
        c.with_options(parallel_count=parallel, err_backoff=0.001)
    else:
        c.with_options(err_backoff=0.001)
    return b.build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), default_options=defaults
    )


def test_fnv1a64_is_the_standard_unsigned_hash() -> None:
    assert fnv1a64("") == 0xCBF29CE484222325
    assert fnv1a64("a") == 0xAF63DC4C8601EC8C
    assert fnv1a64("foobar") == 0x85944171F73967E8
    assert all(fnv1a64(e.id) >= 0 for e in events(1000))


async def test_parallel_connector_triggers_exactly_one_run_per_event() -> None:
    # Given 60 outside events and a connector with three shards
    calls: Counter[str] = Counter()
    wf = build(MemoryConnector(events(60)), calls, parallel=3)
    async with wf, asyncio.timeout(10):
        await run_until_idle(wf)
    # Then every event was handled exactly once, by one shard, and started one run
    assert calls == Counter({f"evt-{i}": 1 for i in range(60)})
    records = wf.record_store.all_records()  # type: ignore[attr-defined]
    assert sorted(r.foreign_id for r in records) == sorted(f"user-{i}" for i in range(60))
    assert {r.status for r in records} == {Signup.EMAIL_SET}
    names = [n for n in wf.process_names() if "connector" in n]
    assert names == [
        f"consume_other_stream-connector-to-example-consumer-{i}-of-3" for i in (1, 2, 3)
    ]


async def test_connector_shards_start_when_parallel_count_comes_from_the_defaults() -> None:
    calls: Counter[str] = Counter()
    wf = build(MemoryConnector(events(20)), calls, defaults=Options(parallel_count=2))
    assert [n for n in wf.process_names() if "connector" in n] == [
        "consume_other_stream-connector-to-example-consumer-1-of-2",
        "consume_other_stream-connector-to-example-consumer-2-of-2",
    ]
    async with wf, asyncio.timeout(10):
        await run_until_idle(wf)
    assert sum(calls.values()) == 20


async def test_failing_connector_function_is_retried() -> None:
    calls: Counter[str] = Counter()
    wf = build(MemoryConnector(events(5)), calls, fail_first=True)
    async with wf, asyncio.timeout(10):
        await run_until_idle(wf)
    assert all(calls[f"evt-{i}"] >= 2 for i in range(5))
    assert len(wf.record_store.all_records()) == 5  # type: ignore[attr-defined]


async def test_events_added_later_are_consumed_and_cursors_survive_restarts() -> None:
    calls: Counter[str] = Counter()
    connector = MemoryConnector(events(3))
    wf = build(connector, calls)
    async with wf, asyncio.timeout(10):
        await run_until_idle(wf)
        connector.add(ConnectorEvent(id="late", foreign_id="user-late"))
        await run_until_idle(wf)
    # A restart resumes from the cursor: nothing is handled twice
    wf2 = build(connector, calls)
    async with wf2, asyncio.timeout(10):
        await run_until_idle(wf2)
    assert calls == Counter({"evt-0": 1, "evt-1": 1, "evt-2": 1, "late": 1})


def test_connector_names_must_be_unique() -> None:
    b = Builder("example", User, Signup)
    b.add_step(Signup.STARTED, set_email, Signup.EMAIL_SET)
    b.add_connector("c", MemoryConnector(), lambda wf, e: None)
    with pytest.raises(BuildError, match="already defined; names are unique"):
        b.add_connector("c", MemoryConnector(), lambda wf, e: None)
