"""Out-of-order redelivery is safe: the version rule drops an event about an older version.

A broker with per-event acknowledgements (``Delivery.PER_EVENT``) hands an unacknowledged
event out again after a crash, possibly after newer events of the same run. The engine
reads the run's current version and ignores an event that announces an older one, so a
run that passes the same status twice still runs that status's step exactly twice. A copy
that lands in the same batch as its original (the outbox relay publishing again after a
crash, beside the broker's redelivery of the first copy) is dropped before the batch's
steps run concurrently, so the step does not run twice in vain.
"""

from __future__ import annotations

import asyncio
import enum
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CollectorRegistry

from conveyor import Builder, Run, RunState, Workflow
from conveyor.abc import Delivery, OutgoingEvent
from conveyor.adapters.memory import MemoryEventStreamer
from conveyor.testing import run_until_idle

from ._support import FAST, WAIT, Doc, Env, new_env


class Loop(enum.IntEnum):
    UNKNOWN = 0
    BEGIN = 1
    START = 2
    AGAIN = 3
    DONE = 4


class RedeliveringStreamer(MemoryEventStreamer):
    """A memory streamer that, like a broker after a crash, delivers every event of a topic
    a second time, after the next ``lag`` events of that topic."""

    delivery = Delivery.PER_EVENT

    def __init__(self, lag: int = 2) -> None:
        super().__init__()
        self._lag = lag
        self._sent: defaultdict[str, list[OutgoingEvent]] = defaultdict(list)
        self.again = 0
        """How many events were appended a second time."""

    def _append(self, topic: str, events: Sequence[OutgoingEvent]) -> None:
        super()._append(topic, events)
        sent = self._sent[topic]
        sent.extend(events)
        due = sent[: max(0, len(sent) - self._lag)]
        if due:
            del sent[: len(due)]
            self.again += len(due)
            super()._append(topic, due)


async def test_late_copies_of_events_about_older_versions_run_no_step() -> None:
    # Given a workflow whose runs pass START three times (BEGIN -> START -> AGAIN -> START
    # -> AGAIN -> START -> DONE), on a streamer that hands every event out again after
    # newer events of its topic
    base: Env = new_env()
    streamer = RedeliveringStreamer()
    registry = CollectorRegistry()
    ran: Counter[tuple[str, Loop, int]] = Counter()

    async def begin(run: Run[Doc, Loop]) -> Loop:
        ran[(run.run_id, run.status, run.meta.version)] += 1
        return Loop.START

    async def start(run: Run[Doc, Loop]) -> Loop:
        ran[(run.run_id, run.status, run.meta.version)] += 1
        return Loop.AGAIN if run.meta.version < 6 else Loop.DONE

    async def again(run: Run[Doc, Loop]) -> Loop:
        ran[(run.run_id, run.status, run.meta.version)] += 1
        return Loop.START

    b = Builder("redelivered", Doc, Loop)
    b.add_step(Loop.BEGIN, begin, Loop.START)
    b.add_step(Loop.START, start, Loop.AGAIN, Loop.DONE)
    b.add_step(Loop.AGAIN, again, Loop.START)
    wf = _build(b, streamer, base, registry)

    # When 20 runs go through it
    run_ids = await _drive(wf, 20)

    # Then late copies came, and those about an older version of their run were dropped by
    # the version rule (counted as skipped), however late
    assert streamer.again >= 20 * 4
    stale = sum(
        registry.get_sample_value(
            "workflow_process_skipped_events_count_total",
            {
                "workflow_name": "redelivered",
                "process_name": f"{status.name.lower()}-consumer-1-of-1",
                "reason": "event record version lower than latest record version",
            },
        )
        or 0.0
        for status in (Loop.BEGIN, Loop.START, Loop.AGAIN)
    )
    assert stale > 0
    # And every step ran once on each version its run reached there, and on no other
    visits = [(Loop.BEGIN, 1), (Loop.START, 2), (Loop.AGAIN, 3), (Loop.START, 4)]
    visits += [(Loop.AGAIN, 5), (Loop.START, 6)]
    assert ran == Counter((run_id, s, v) for run_id in run_ids for s, v in visits)
    # And each run's versions were written once each, in the graph's order
    statuses = [s for s, _ in visits] + [Loop.DONE]
    for i, run_id in enumerate(run_ids):
        written = base.store.snapshots("redelivered", f"fid-{i}", run_id)
        assert [(r.meta.version, r.status) for r in written] == list(enumerate(statuses, start=1))
        assert written[-1].run_state is RunState.COMPLETED


async def test_a_copy_in_the_same_batch_as_its_original_runs_no_second_step() -> None:
    # Given a three-step workflow on a streamer that appends every event twice in a row,
    # so that a copy and its original come in one batch
    base: Env = new_env()
    streamer = RedeliveringStreamer(lag=0)
    registry = CollectorRegistry()
    ran: Counter[tuple[str, Loop, int]] = Counter()
    started = asyncio.Event()

    def step(to: Loop) -> Callable[[Run[Doc, Loop]], Awaitable[Loop]]:
        async def run_step(run: Run[Doc, Loop]) -> Loop:
            ran[(run.run_id, run.status, run.meta.version)] += 1
            await started.wait()  # every run is triggered before any step goes on
            return to

        return run_step

    b = Builder("copied", Doc, Loop)
    b.add_step(Loop.BEGIN, step(Loop.START), Loop.START)
    b.add_step(Loop.START, step(Loop.AGAIN), Loop.AGAIN)
    b.add_step(Loop.AGAIN, step(Loop.DONE), Loop.DONE)
    wf = _build(b, streamer, base, registry)

    # When 20 runs go through it (every one triggered before any step goes on)
    run_ids = await _drive(wf, 20, triggered=started.set)

    # Then each step ran exactly once per run
    visits = [(Loop.BEGIN, 1), (Loop.START, 2), (Loop.AGAIN, 3)]
    assert ran == Counter((run_id, s, v) for run_id in run_ids for s, v in visits)
    # ... though copies came in the batches of their originals: they were dropped there
    assert streamer.again >= 20 * 3
    copies = registry.get_sample_value(
        "workflow_process_skipped_events_count_total",
        {
            "workflow_name": "copied",
            "process_name": "begin-consumer-1-of-1",
            "reason": "copy of an event in the same batch",
        },
    )
    assert (copies or 0) > 0


def _build(
    b: Builder[Doc, Loop], streamer: MemoryEventStreamer, base: Env, registry: CollectorRegistry
) -> Workflow[Doc, Loop]:
    return b.build(
        streamer,
        base.store,
        base.roles,
        clock=base.clock,
        default_options=FAST,
        metrics_registry=registry,
    )


async def _drive(
    wf: Workflow[Doc, Loop], n: int, *, triggered: Callable[[], object] = lambda: None
) -> list[str]:
    """Run ``wf``, trigger ``n`` runs (then call ``triggered``), wait until each is DONE and
    the workflow is idle, stop it; the run IDs."""
    await wf.run()
    try:
        run_ids = [await wf.trigger(f"fid-{i}") for i in range(n)]
        triggered()
        async with asyncio.timeout(WAIT):
            for i, run_id in enumerate(run_ids):
                await wf.wait(f"fid-{i}", run_id, Loop.DONE)
        await run_until_idle(wf, timeout=WAIT)
    finally:
        await wf.stop()
    return run_ids
