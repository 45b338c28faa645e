"""An idle workflow costs nothing: once idle, it runs only when an event or a timer wakes
it, and its timers are its fallback looks at their configured intervals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from conveyor import Options, OutboxOptions
from conveyor.testing import run_until_idle

from ._support import WAIT, Env, linear

HOUR = 3600.0


async def test_an_idle_workflow_neither_spins_nor_polls_sooner_than_its_fallbacks(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []
    call_at = loop.call_at

    def recording_call_at(when: float, callback: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        timer = call_at(when, callback, *args, **kw)
        timers.append(timer)
        return timer

    monkeypatch.setattr(loop, "call_at", recording_call_at)  # every timer goes through it
    # Given a workflow whose fallback looks are an hour apart, run until idle
    wf = env.build(
        linear("idle"),
        default_options=Options(polling_frequency=HOUR),
        outbox=OutboxOptions(polling_frequency=HOUR),
    )
    async with wf:
        await run_until_idle(wf, timeout=WAIT)

        # When the event loop turns a hundred times with its clock stopped (no timer can
        # come due), recording every callback it is asked to run
        me = asyncio.current_task()
        woken: list[Callable[..., Any]] = []
        call_soon = loop.call_soon

        def recording_call_soon(callback: Callable[..., Any], *args: Any, **kw: Any) -> Any:
            woken.append(callback)
            return call_soon(callback, *args, **kw)

        now = loop.time()
        with monkeypatch.context() as frozen:
            frozen.setattr(loop, "time", lambda: now)
            frozen.setattr(loop, "call_soon", recording_call_soon)
            for _ in range(100):
                await asyncio.sleep(0)

        # Then nothing but this test ran in those turns: nothing spins
        assert [cb for cb in woken if getattr(cb, "__self__", None) is not me] == []
        # And every timer the workflow waits on is a fallback, an hour away: nothing polls
        pending = [t.when() - now for t in timers if not t.cancelled() and t.when() > now]
        assert [delay for delay in pending if delay < HOUR / 2] == []
