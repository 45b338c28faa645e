"""Hooks: on_pause / on_cancel / on_complete run (at least once) with the run's record."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

from conveyor import Builder, Marker, Run, RunState, TypedRecord
from conveyor.testing import run_until_idle

from ._support import WAIT, Doc, Env, Status


async def test_each_hook_fires_once_per_run_with_the_record(env: Env) -> None:
    fired: list[tuple[str, str, RunState, Doc]] = []

    def hook(kind: str):  # type: ignore[no-untyped-def]
        async def on(record: TypedRecord[Doc, Status]) -> None:
            fired.append((kind, record.foreign_id, record.run_state, record.object))

        return on

    async def step(run: Run[Doc, Status]) -> Status | Marker:
        run.object.name = run.foreign_id
        if run.foreign_id == "pause-me":
            return run.pause("p")
        if run.foreign_id == "cancel-me":
            return run.cancel("c")
        return Status.DONE

    b = Builder("hooks", Doc, Status)
    b.add_step(Status.STARTED, step, Status.DONE)
    b.on_pause(hook("pause"))
    b.on_cancel(hook("cancel"))
    b.on_complete(hook("complete"))
    wf = env.build(b)
    async with wf:
        for fid in ("pause-me", "cancel-me", "complete-me"):
            await wf.trigger(fid)
        await run_until_idle(wf, timeout=WAIT)

    assert sorted(fired, key=lambda f: f[0]) == [
        ("cancel", "cancel-me", RunState.CANCELLED, Doc(name="cancel-me")),
        ("complete", "complete-me", RunState.COMPLETED, Doc(name="complete-me")),
        ("pause", "pause-me", RunState.PAUSED, Doc(name="pause-me")),
    ]
    assert {
        "paused-run-state-change-hook-consumer",
        "cancelled-run-state-change-hook-consumer",
        "completed-run-state-change-hook-consumer",
    } <= set(wf.process_names())


async def test_hooks_fire_for_manual_moves_too(env: Env) -> None:
    fired: Counter[str] = Counter()

    async def on_pause(record: TypedRecord[Doc, Status]) -> None:
        fired["pause"] += 1

    async def on_cancel(record: TypedRecord[Doc, Status]) -> None:
        fired["cancel"] += 1

    b = Builder("manual-hooks", Doc, Status)
    b.add_callback(Status.STARTED, lambda run, payload: Status.DONE, Status.DONE)
    b.on_pause(on_pause)
    b.on_cancel(on_cancel)
    wf = env.build(b, pause_retry=None)
    async with wf:
        rid = await wf.trigger("fid")
        await wf.pause(rid)
        await wf.cancel(rid)
        await run_until_idle(wf, timeout=WAIT)
    assert fired == {"pause": 1, "cancel": 1}


async def test_a_failing_hook_is_retried_until_it_succeeds(env: Env) -> None:
    attempts = 0
    done = asyncio.Event()

    async def on_complete(record: TypedRecord[Doc, Status]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("webhook down")
        done.set()

    b = Builder("retry-hook", Doc, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    b.on_complete(on_complete)
    wf = env.build(b)
    async with wf:
        await wf.trigger("fid")
        async with asyncio.timeout(WAIT):
            await done.wait()
        await run_until_idle(wf, timeout=WAIT)
    assert attempts == 3


async def test_a_plain_def_hook_runs_in_a_thread(env: Env) -> None:
    threads: list[threading.Thread] = []

    def on_complete(record: TypedRecord[Doc, Status]) -> None:
        threads.append(threading.current_thread())

    b = Builder("sync-hook", Doc, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    b.on_complete(on_complete)
    wf = env.build(b)
    async with wf:
        await wf.trigger("fid")
        await run_until_idle(wf, timeout=WAIT)
    assert len(threads) == 1
    assert threads[0] is not threading.main_thread()


async def test_no_hook_process_without_a_hook(env: Env) -> None:
    b = Builder("no-hooks", Doc, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    wf = env.build(b)
    assert not [n for n in wf.process_names() if "hook" in n]
