"""A seeded randomized test of the engine's invariants under chaos.

Three ``Workflow`` instances of one workflow share memory adapters and a fake clock.
Thousands of runs are triggered while steps fail, pause and cancel at random, roles are
revoked, pause/resume/cancel race the steps through random instances, and the clock jumps
so the pause-retry consumers resume old pauses. At the end every paused run is resumed
until none is left, and every stored version of every run is checked.

Reproduce a failure with ``CONVEYOR_SEED=<seed> pytest tests/test_randomized.py`` (the seed
is printed, and noted on the exception). Scheduling (threads, the supervisor's backoff
jitter) is not seeded, so a seed reproduces the load, not the exact interleaving.
"""

from __future__ import annotations

import asyncio
import enum
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import pairwise

import msgspec
import pytest

from conveyor import (
    Builder,
    InvalidTransition,
    Marker,
    Options,
    Record,
    Run,
    RunState,
    TypedRecord,
    VersionConflict,
    Workflow,
)
from conveyor.abc import Header, run_state_change_topic, topic
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.testing import FakeClock, run_until_idle

DEFAULT_SEED = 20240611
NAME = "parcels"
PAUSE_RETRY = 3600.0
ERROR_PAUSE = "max error retry threshold hit - automatically paused"  # luno-behaviour §4.4


class Status(enum.IntEnum):
    RECEIVED = 1  # async step: CHECKED, or straight to REJECTED (Initiated -> Completed)
    CHECKED = 2  # plain def step, parallel_count=3: APPROVED or REJECTED (the branch)
    APPROVED = 3  # async step: save_and_repeat ``loop_target`` times, then SHIPPED
    SHIPPED = 4  # plain def step, pause_after_err_count=2: DELIVERED or RETURNED
    DELIVERED = 5  # terminal
    REJECTED = 6  # terminal
    RETURNED = 7  # terminal


EDGES: dict[Status, tuple[Status, ...]] = {
    Status.RECEIVED: (Status.CHECKED, Status.REJECTED),
    Status.CHECKED: (Status.APPROVED, Status.REJECTED),
    Status.APPROVED: (Status.SHIPPED,),
    Status.SHIPPED: (Status.DELIVERED, Status.RETURNED),
}
TERMINAL = frozenset({Status.DELIVERED, Status.REJECTED, Status.RETURNED})
START = Status.RECEIVED
ACTIVE = frozenset({RunState.INITIATED, RunState.RUNNING})

# luno-behaviour.md §4.2, the controller's table (written out here, independent of the code).
TABLE = frozenset(
    {
        (RunState.INITIATED, RunState.RUNNING),
        (RunState.INITIATED, RunState.PAUSED),
        (RunState.RUNNING, RunState.COMPLETED),
        (RunState.RUNNING, RunState.PAUSED),
        (RunState.RUNNING, RunState.CANCELLED),
        (RunState.PAUSED, RunState.RUNNING),
        (RunState.PAUSED, RunState.CANCELLED),
        (RunState.COMPLETED, RunState.REQUESTED_DATA_DELETED),
        (RunState.CANCELLED, RunState.REQUESTED_DATA_DELETED),
        (RunState.REQUESTED_DATA_DELETED, RunState.DATA_DELETED),
        (RunState.DATA_DELETED, RunState.REQUESTED_DATA_DELETED),
    }
)
# What a step write may do to the run state (§1.6, §4.2 "writes outside the table"): a run
# still Initiated shows as Running to the step, so its first write may go Initiated ->
# Running / Completed (straight to a terminal status) / Paused / Cancelled (run.cancel()).
# Running -> Running is a status move or save_and_repeat.
STEP_MOVES = frozenset(
    (before, after)
    for before in ACTIVE
    for after in (RunState.RUNNING, RunState.COMPLETED, RunState.PAUSED, RunState.CANCELLED)
)
# Every other write (controller, pause retry, the engine's error pause) keeps the object and
# the status and is a move of TABLE.

# Why a run is paused or cancelled, by who wrote it; every other state has no reason.
STEP_REASONS = {RunState.PAUSED: "step pause", RunState.CANCELLED: "step cancel"}
OTHER_REASONS = {RunState.PAUSED: {"chaos", ERROR_PAUSE}, RunState.CANCELLED: {"chaos"}}


class Parcel(msgspec.Struct):
    """The run's object. Every step write changes it, so writes can be attributed."""

    index: int = 0
    shortcut: bool = False  # RECEIVED -> REJECTED
    approve: bool = True  # CHECKED -> APPROVED (else REJECTED)
    deliver: bool = True  # SHIPPED -> DELIVERED (else RETURNED)
    loop_target: int = 0  # save_and_repeat iterations at APPROVED
    loops: int = 0
    writes: int = 0  # step writes so far
    seen: int = 0  # the version the step that wrote this ran on


def decode(record: Record) -> Parcel:
    return msgspec.json.decode(record.object, type=Parcel)


@dataclass(frozen=True, slots=True)
class Call:
    """One step invocation, as the step saw it."""

    status: Status
    run_id: str
    version: int
    run_state: RunState
    obj: bytes
    current: int | None  # for async steps: the stored version when the step started


class Boom(Exception):
    """A step failure (same message every time, so pause_after_err_count can trip)."""


class Logger:
    """Counts errors instead of printing a traceback for each expected failure."""

    def __init__(self) -> None:
        self.errors = 0
        self.unexpected: list[str] = []

    def debug(self, msg: str, **meta: object) -> None:
        pass

    def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
        self.errors += 1
        # A run's repeated failure is logged in one line after its first traceback.
        repeated = exc is None and str(meta.get("error", "")).startswith("Boom")
        if not isinstance(exc, Boom) and not repeated:
            self.unexpected.append(f"logged {msg}: {exc!r} {meta}")


class Plan:
    """The seeded decisions of the steps, and a log of every call (threads share it)."""

    def __init__(self, seed: int, store: MemoryRecordStore) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, int], int] = {}
        self.store = store
        self.calls: list[Call] = []

    def draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def outcome(self, run: Run[Parcel, Status], current: int | None) -> Marker | None:
        """Log the call; fail (at most 3 times per version), pause, cancel, or go on."""
        obj = msgspec.json.encode(run.object)
        self.calls.append(Call(run.status, run.run_id, run.version, run.run_state, obj, current))
        key = (run.run_id, run.version)
        with self._lock:
            left = self._failures.get(key)
            if left is None:
                roll = self._rng.random()
                left = 0 if roll < 0.75 else 1 if roll < 0.9 else 3
            self._failures[key] = max(0, left - 1)
            roll = self._rng.random()
        if left > 0:
            raise Boom("boom")
        run.object.writes += 1
        run.object.seen = run.version
        if roll < 0.02:
            return run.pause(STEP_REASONS[RunState.PAUSED])
        if roll < 0.03:
            return run.cancel(STEP_REASONS[RunState.CANCELLED])
        return None


@dataclass(slots=True)
class Stats:
    revoked: int = 0
    moves: int = 0
    refused: int = 0
    clock_jumps: int = 0
    end_resumes: int = 0
    rounds: int = 0


def build(plan: Plan, hooked: dict[RunState, set[str]], bad: list[str]) -> Builder[Parcel, Status]:
    b: Builder[Parcel, Status] = Builder(NAME, Parcel, Status)

    async def receive(run: Run[Parcel, Status]) -> Status | Marker:
        current = (await plan.store.lookup(run.run_id)).version
        marker = plan.outcome(run, current)
        if marker is not None:
            return marker
        return Status.REJECTED if run.object.shortcut else Status.CHECKED

    def check(run: Run[Parcel, Status]) -> Status | Marker:
        marker = plan.outcome(run, None)
        if marker is not None:
            return marker
        return Status.APPROVED if run.object.approve else Status.REJECTED

    async def approve(run: Run[Parcel, Status]) -> Status | Marker:
        current = (await plan.store.lookup(run.run_id)).version
        marker = plan.outcome(run, current)
        if plan.draw() < 0.3:
            await asyncio.sleep(0)  # let the chaos in while the step is running
        if marker is not None:
            return marker
        if run.object.loops < run.object.loop_target:
            run.object.loops += 1
            return run.save_and_repeat()
        return Status.SHIPPED

    def ship(run: Run[Parcel, Status]) -> Status | Marker:
        marker = plan.outcome(run, None)
        if marker is not None:
            return marker
        return Status.DELIVERED if run.object.deliver else Status.RETURNED

    def hook(state: RunState) -> Callable[[TypedRecord[Parcel, Status]], None]:
        def on_state(record: TypedRecord[Parcel, Status]) -> None:
            if record.run_state is not state:
                bad.append(f"{state} hook got {record.run_id} in {record.run_state}")
            hooked[state].add(record.run_id)

        return on_state

    b.add_step(Status.RECEIVED, receive, *EDGES[Status.RECEIVED])
    b.add_step(Status.CHECKED, check, *EDGES[Status.CHECKED]).with_options(parallel_count=3)
    b.add_step(Status.APPROVED, approve, *EDGES[Status.APPROVED])
    b.add_step(Status.SHIPPED, ship, *EDGES[Status.SHIPPED]).with_options(pause_after_err_count=2)
    b.on_complete(hook(RunState.COMPLETED))
    b.on_cancel(hook(RunState.CANCELLED))
    return b


# ---------------------------------------------------------------------------- chaos


async def random_move(
    rng: random.Random, wf: Workflow[Parcel, Status], run_id: str, stats: Stats
) -> None:
    """Pause, resume or cancel; a refusal is an expected outcome of a race."""
    roll = rng.random()
    move: Callable[[], Awaitable[Run[Parcel, Status]]]
    if roll < 0.45:
        move = lambda: wf.pause(run_id, "chaos")  # noqa: E731
    elif roll < 0.9:
        move = lambda: wf.resume(run_id)  # noqa: E731
    else:
        move = lambda: wf.cancel(run_id, "chaos")  # noqa: E731
    try:
        await move()
        stats.moves += 1
    except (InvalidTransition, VersionConflict):
        stats.refused += 1


async def chaos_roles(
    rng: random.Random, scheduler: MemoryRoleScheduler, stop: asyncio.Event, stats: Stats
) -> None:
    while not stop.is_set():
        roles = scheduler.held_roles()
        if roles and scheduler.revoke(rng.choice(roles)):
            stats.revoked += 1
        # Random jitter between revocations, to vary the interleavings; it proves nothing.
        await asyncio.sleep(rng.choice((0, 0, 0.0005, 0.001)))


async def chaos_moves(
    rng: random.Random,
    workflows: list[Workflow[Parcel, Status]],
    run_ids: list[str],
    clock: FakeClock,
    stop: asyncio.Event,
    stats: Stats,
) -> None:
    while not stop.is_set():
        if not run_ids:
            await asyncio.sleep(0)
            continue
        pick = rng.random()  # mostly fresh runs, so moves race the first steps too
        recent = run_ids[-40:] if pick < 0.5 else run_ids[-300:] if pick < 0.8 else run_ids
        await random_move(rng, rng.choice(workflows), rng.choice(recent), stats)
        if rng.random() < 0.002:
            clock.advance(PAUSE_RETRY + 1)  # the pause-retry consumers resume old pauses
            stats.clock_jumps += 1
        # Random jitter between moves, to vary the interleavings; it proves nothing.
        await asyncio.sleep(0 if rng.random() < 0.95 else 0.0002)


# ---------------------------------------------------------------------------- checks


def check_run(
    snaps: list[Record], run_id: str, initial: Parcel, calls: dict[tuple[str, int], list[Call]]
) -> list[str]:
    """Every invariant of one run's history; returns what is violated."""
    where = f"run {run_id} (#{initial.index})"
    if not snaps:
        return [f"{where}: lost (no record)"]
    versions = [s.version for s in snaps]
    if versions != list(range(1, len(snaps) + 1)):
        return [f"{where}: versions are not 1, 2, 3...: {versions}"]
    bad: list[str] = []
    first, last = snaps[0], snaps[-1]
    if first.run_state is not RunState.INITIATED or first.status != START:
        bad.append(f"{where}: first version is {first.run_state} at {first.status}")
    if decode(first) != initial:
        bad.append(f"{where}: first object is not the trigger's object")
    for s in snaps:
        at = f"{where} v{s.version}"
        if s.status not in set(Status):
            bad.append(f"{at}: unknown status {s.status}")
        elif (Status(s.status) in TERMINAL) != (s.run_state is RunState.COMPLETED):
            bad.append(f"{at}: {s.run_state} at {Status(s.status).name}")
        if (s.run_id, s.workflow_name, s.foreign_id) != (run_id, NAME, first.foreign_id):
            bad.append(f"{at}: identity changed")
        if s.created_at != first.created_at:
            bad.append(f"{at}: created_at changed")
    for a, b in pairwise(snaps):
        bad.extend(check_write(a, b, f"{where} v{a.version}->v{b.version}", calls))
    if last.run_state not in (RunState.COMPLETED, RunState.CANCELLED):
        bad.append(f"{where}: stuck {last.run_state} at {Status(last.status).name}")
    if last.status == Status.DELIVERED and decode(last).loops != initial.loop_target:
        bad.append(f"{where}: delivered after {decode(last).loops}/{initial.loop_target} loops")
    return bad


def check_write(
    a: Record, b: Record, at: str, calls: dict[tuple[str, int], list[Call]]
) -> list[str]:
    """One write, ``a`` -> ``b``: by a step (the object changed) or by a controller."""
    bad: list[str] = []
    if b.updated_at < a.updated_at:
        bad.append(f"{at}: updated_at went back")
    if a.run_state.finished():
        bad.append(f"{at}: written over a finished run ({a.run_state})")
    obj_a, obj_b = decode(a), decode(b)
    if obj_a != obj_b:
        return bad + check_step_write(a, b, obj_a, obj_b, at, calls)
    # The controller, pause retry, or the engine's error pause.
    if b.status != a.status:
        bad.append(f"{at}: status changed without a step")
    if (a.run_state, b.run_state) not in TABLE:
        bad.append(f"{at}: run-state move {a.run_state}->{b.run_state} outside the table")
    reason = b.meta.run_state_reason
    if reason.startswith(ERROR_PAUSE):
        reason = ERROR_PAUSE  # followed by the count and the last error
    if reason not in OTHER_REASONS.get(b.run_state, {""}):
        bad.append(f"{at}: {b.run_state} with reason {reason!r}")
    return bad


def check_step_write(
    a: Record,
    b: Record,
    obj_a: Parcel,
    obj_b: Parcel,
    at: str,
    calls: dict[tuple[str, int], list[Call]],
) -> list[str]:
    """A write of what a step returned, when it ran on version ``a``."""
    bad: list[str] = []
    if obj_b.writes != obj_a.writes + 1 or obj_b.seen != a.version:
        bad.append(f"{at}: object changed, but not by a step on v{a.version}")
    if (a.run_state, b.run_state) not in STEP_MOVES:
        bad.append(f"{at}: step wrote {a.run_state}->{b.run_state}")
    ran = calls.get((a.run_id, a.version), [])
    if not any(c.status == a.status and c.obj == a.object for c in ran):
        bad.append(f"{at}: written for a step that was never called on v{a.version}")
    reason = b.meta.run_state_reason
    if reason != STEP_REASONS.get(b.run_state, ""):
        bad.append(f"{at}: {b.run_state} with reason {reason!r}")
    name_a, name_b = Status(a.status).name, Status(b.status).name
    if b.status != a.status:
        if Status(b.status) not in EDGES.get(Status(a.status), ()):
            bad.append(f"{at}: {name_a}->{name_b} is not an edge")
        want = RunState.COMPLETED if Status(b.status) in TERMINAL else RunState.RUNNING
        if b.run_state is not want:
            bad.append(f"{at}: moved to {name_b} as {b.run_state}")
    elif b.run_state is RunState.RUNNING:  # save_and_repeat
        if a.status != Status.APPROVED or obj_b.loops != obj_a.loops + 1:
            bad.append(f"{at}: save_and_repeat at {name_a}, loops {obj_a.loops}->{obj_b.loops}")
    elif b.run_state not in (RunState.PAUSED, RunState.CANCELLED):
        bad.append(f"{at}: step stayed at {name_a} as {b.run_state}")
    return bad


def check_calls(calls: list[Call], snapshots: dict[str, list[Record]]) -> list[str]:
    """Steps ran only on stored, active versions at their status, seen as Running.

    Async steps start with no await between the engine's lookup and the call, so with the
    memory store they must see the latest version: never one already superseded.
    """
    bad: list[str] = []
    for c in calls:
        snaps = snapshots.get(c.run_id, [])
        at = f"step {c.status.name} on run {c.run_id} v{c.version}"
        if not 1 <= c.version <= len(snaps):
            bad.append(f"{at}: no such version")
            continue
        s = snaps[c.version - 1]
        if s.status != c.status or s.run_state not in ACTIVE or s.object != c.obj:
            bad.append(f"{at}: that version is {s.run_state} at {s.status}")
        if c.run_state is not RunState.RUNNING:
            bad.append(f"{at}: the step saw {c.run_state}")
        if c.current is not None and c.current != c.version:
            bad.append(f"{at}: ran after v{c.current} superseded it")
    return bad


async def check_events(
    streamer: MemoryEventStreamer, snapshots: dict[str, list[Record]]
) -> list[str]:
    """Every write was published (at least once) on its topic, and nothing else was."""
    published: dict[tuple[str, int], set[str]] = defaultdict(set)
    bad: list[str] = []
    for name in [topic(NAME, s) for s in Status] + [run_state_change_topic(NAME)]:
        rx = await streamer.new_receiver(name, f"audit-{uuid.uuid4().hex}")
        while rx.pending() > 0:
            for event in await rx.recv(10_000):
                run_id = event.headers[Header.RUN_ID]
                version = int(event.headers[Header.RECORD_VERSION])
                snaps = snapshots.get(run_id, [])
                if not 1 <= version <= len(snaps):
                    bad.append(f"event for a write never stored: {run_id} v{version}")
                    continue
                s = snaps[version - 1]
                if (event.type, event.foreign_id, event.headers[Header.RUN_STATE]) != (
                    s.status,
                    run_id,
                    str(int(s.run_state)),
                ):
                    bad.append(f"event {event} does not match {s}")
                published[(run_id, version)].add(name)
        await rx.close()
    for run_id, snaps in snapshots.items():
        for s in snaps:
            want = topic(NAME, s.status) if s.run_state in ACTIVE else run_state_change_topic(NAME)
            got = published.get((run_id, s.version))
            if got != {want}:
                bad.append(f"write {run_id} v{s.version} published on {got}, not {want}")
    return bad


# ---------------------------------------------------------------------------- scenario


class Scenario:
    """Three instances on shared memory adapters, under load and chaos."""

    def __init__(self, seed: int, runs: int) -> None:
        self.seed = seed
        self.runs = runs
        self.rng = random.Random(seed)
        self.clock = FakeClock()
        self.streamer = MemoryEventStreamer(clock=self.clock)
        self.store = MemoryRecordStore()
        self.scheduler = MemoryRoleScheduler()
        self.logger = Logger()
        self.plan = Plan(self.rng.randrange(2**32), self.store)
        self.hooked: dict[RunState, set[str]] = {
            RunState.COMPLETED: set(),
            RunState.CANCELLED: set(),
        }
        self.bad: list[str] = []
        builder = build(self.plan, self.hooked, self.bad)
        self.workflows = [
            builder.build(
                self.streamer,
                self.store,
                self.scheduler,
                clock=self.clock,
                logger=self.logger,
                default_options=Options(err_backoff=0.0005),
                pause_retry=PAUSE_RETRY,
            )
            for _ in range(3)
        ]
        self.initial: dict[str, Parcel] = {}
        self.run_ids: list[str] = []
        self.stats = Stats()

    async def trigger(self, i: int) -> None:
        rng = self.rng
        parcel = Parcel(
            index=i,
            shortcut=rng.random() < 0.1,
            approve=rng.random() < 0.8,
            deliver=rng.random() < 0.7,
            loop_target=rng.randrange(4),
        )
        run_id = await rng.choice(self.workflows).trigger(f"parcel-{i}", initial=parcel)
        self.initial[run_id] = parcel
        self.run_ids.append(run_id)
        if rng.random() < 0.2:  # race the run's first step
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)
            await random_move(rng, rng.choice(self.workflows), run_id, self.stats)

    async def load(self, batch: int = 50) -> None:
        """Trigger every run, in concurrent batches, while the chaos runs."""
        rng, stop = self.rng, asyncio.Event()
        chaos = [
            asyncio.create_task(
                chaos_roles(random.Random(rng.random()), self.scheduler, stop, self.stats)
            ),
            *(
                asyncio.create_task(
                    chaos_moves(
                        random.Random(rng.random()),
                        self.workflows,
                        self.run_ids,
                        self.clock,
                        stop,
                        self.stats,
                    )
                )
                for _ in range(3)
            ),
        ]
        try:
            for first in range(0, self.runs, batch):
                end = min(self.runs, first + batch)
                await asyncio.gather(*(self.trigger(i) for i in range(first, end)))
                await asyncio.sleep(0)
            # Keep the chaos going until almost every run has been picked up.
            deadline = time.monotonic() + 10
            while sum(r.run_state is RunState.INITIATED for r in self.store.all_records()) > 10:
                assert time.monotonic() < deadline, "runs not picked up by any step consumer"
                await self.store.wait_for_change(0.5)
        finally:
            stop.set()
            await asyncio.gather(*chaos)

    async def settle(self) -> None:
        """Resume every paused run until none is paused (steps pause runs again at times)."""
        for _ in range(100):
            await run_until_idle(*self.workflows, timeout=20)
            paused = [r for r in self.store.all_records() if r.run_state is RunState.PAUSED]
            if not paused:
                return
            self.stats.rounds += 1
            for r in paused:
                try:
                    await self.rng.choice(self.workflows).resume(r.run_id)
                    self.stats.end_resumes += 1
                except (InvalidTransition, VersionConflict):
                    pass  # a pause-retry consumer got there first
        raise AssertionError("runs kept being paused")

    async def verify(self) -> Counter[tuple[RunState, RunState]]:
        store, runs, bad = self.store, self.runs, self.bad
        snapshots = {
            r: store.snapshots(NAME, f"parcel-{p.index}", r) for r, p in self.initial.items()
        }
        calls: dict[tuple[str, int], list[Call]] = defaultdict(list)
        for c in self.plan.calls:
            calls[(c.run_id, c.version)].append(c)
        if len(self.run_ids) != runs or len(set(self.run_ids)) != runs:
            bad.append(f"triggered {len(set(self.run_ids))} distinct runs, not {runs}")
        if {r.run_id for r in store.all_records()} != set(self.run_ids):
            bad.append("the store holds runs that were never triggered, or lost some")
        for run_id in self.run_ids:
            bad.extend(check_run(snapshots[run_id], run_id, self.initial[run_id], calls))
            if snapshots[run_id] and snapshots[run_id][-1] != await store.lookup(run_id):
                bad.append(f"run {run_id}: the last snapshot is not the stored record")
        bad.extend(check_calls(self.plan.calls, snapshots))
        bad.extend(await check_events(self.streamer, snapshots))
        for state, hooked in self.hooked.items():
            ended = {r for r, s in snapshots.items() if s and s[-1].run_state is state}
            if missing := ended - hooked:
                bad.append(f"{len(missing)} {state} runs never reached their hook")
        bad.extend(self.logger.unexpected[:10])
        if store.outbox_size():
            bad.append(f"{store.outbox_size()} outbox events never relayed")
        moves = Counter(
            (a.run_state, b.run_state) for s in snapshots.values() for a, b in pairwise(s)
        )
        final = Counter(s[-1].run_state for s in snapshots.values() if s)
        st = self.stats
        print(
            f"seed={self.seed} runs={runs} writes={sum(len(s) for s in snapshots.values())} "
            f"step calls={len(self.plan.calls)} final={dict(final)} revoked={st.revoked} "
            f"moves={st.moves} refused={st.refused} clock jumps={st.clock_jumps} "
            f"end resumes={st.end_resumes} ({st.rounds} rounds) errors={self.logger.errors}\n"
            + ", ".join(f"{a}->{b}: {n}" for (a, b), n in sorted(moves.items()))
        )
        assert not bad, f"{len(bad)} violations (seed {self.seed}):\n" + "\n".join(bad[:30])
        return moves


async def scenario(seed: int, runs: int) -> Counter[tuple[RunState, RunState]]:
    s = Scenario(seed, runs)
    try:
        for wf in s.workflows:
            await wf.run()
        started = time.monotonic()
        await s.load()
        await s.settle()
        print(f"load and settle: {time.monotonic() - started:.2f}s")
        moves = await s.verify()
    finally:
        for wf in s.workflows:
            await wf.stop()
    # The chaos must really have happened, or the test proves little.
    assert s.stats.revoked > 0
    assert s.stats.moves > 0
    assert s.stats.refused > 0
    return moves


def test_the_table_is_the_documented_one() -> None:
    for a in RunState:
        for b in RunState:
            assert a.can_transition_to(b) == ((a, b) in TABLE), (a, b)


def base_seed() -> int:
    return int(os.environ.get("CONVEYOR_SEED", DEFAULT_SEED))


@pytest.mark.parametrize(("offset", "runs"), [(0, 2000), (1, 1000), (2, 400)])
async def test_randomized_invariants(offset: int, runs: int) -> None:
    seed = base_seed() + offset
    print(f"CONVEYOR_SEED={seed - offset} (seed {seed}, {runs} runs)")
    try:
        moves = await scenario(seed, runs)
    except BaseException as exc:
        exc.add_note(f"reproduce with CONVEYOR_SEED={seed - offset}")
        raise
    if runs >= 1000:  # every kind of write happened
        wanted = STEP_MOVES | {
            (RunState.PAUSED, RunState.RUNNING),
            (RunState.PAUSED, RunState.CANCELLED),
        }
        assert wanted <= set(moves), wanted - set(moves)
