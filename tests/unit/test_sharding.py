"""parallel_count: n step processes, each handling the events with ``event.id % n == i - 1``."""

from __future__ import annotations

import asyncio
from collections import Counter

from conveyor import Builder, Options, Run
from conveyor.abc import Header, topic
from conveyor.testing import run_until_idle

from ._support import FAST, WAIT, Doc, Env, SpyStreamer, Status, current_receiver, events_on

N = 3


def sharded(handled: list[tuple[str, str]]) -> Builder[Doc, Status]:
    async def step(run: Run[Doc, Status]) -> Status:
        handled.append((current_receiver.get(), run.run_id))
        return Status.DONE

    b = Builder("shard", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE).with_options(parallel_count=N)
    return b


def test_each_shard_is_a_process_named_i_of_n(env: Env) -> None:
    wf = env.build(sharded([]))
    steps = [n for n in wf.process_names() if n.startswith("started-")]
    assert steps == [f"started-consumer-{i}-of-{N}" for i in range(1, N + 1)]


def test_parallel_count_can_come_from_the_defaults(env: Env) -> None:
    b = Builder("shard-defaults", Doc, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    wf = env.build(b, default_options=Options(parallel_count=2))
    assert "started-consumer-1-of-2" in wf.process_names()
    assert "started-consumer-2-of-2" in wf.process_names()


async def test_each_event_is_handled_by_exactly_one_shard_by_id_modulo_n(env: Env) -> None:
    # Given a 3-shard step on a streamer that tells the step which receiver fed it
    handled: list[tuple[str, str]] = []
    spy = SpyStreamer(env.streamer)
    wf = sharded(handled).build(spy, env.store, env.roles, clock=env.clock, default_options=FAST)
    async with wf:
        # When 50 runs go through
        run_ids = [await wf.trigger(f"fid-{i}") for i in range(50)]
        async with asyncio.timeout(WAIT):
            for i, rid in enumerate(run_ids):
                await wf.wait(f"fid-{i}", rid, Status.DONE)
        await run_until_idle(wf, timeout=WAIT)

    # Then the step ran exactly once per run
    assert len(handled) == 50
    assert sorted(rid for _, rid in handled) == sorted(run_ids)

    # And each run was handled by the shard i with event.id % n == i - 1
    events = await events_on(env.streamer, topic("shard", Status.STARTED))
    event_id = {e.headers[Header.RUN_ID]: e.id for e in events}
    for receiver, rid in handled:
        shard = int(receiver.removeprefix("shard-1-consumer-").split("-of-")[0])
        assert event_id[rid] % N == shard - 1, (receiver, event_id[rid])

    # And the work was spread over every shard, each of which read the whole topic
    assert set(Counter(r for r, _ in handled)) == {
        f"shard-1-consumer-{i}-of-{N}" for i in range(1, N + 1)
    }
    for i in range(1, N + 1):
        seen = {e.id for name, e in spy.received if name == f"shard-1-consumer-{i}-of-{N}"}
        assert seen == set(event_id.values())
