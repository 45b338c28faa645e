"""An idle workflow costs nothing: nothing polls or spins while there is no work."""

from __future__ import annotations

import asyncio
import time

from conveyor.testing import run_until_idle

from ._support import WAIT, Env, linear


async def test_an_idle_workflow_uses_no_cpu(env: Env) -> None:
    wf = env.build(linear("idle"))
    async with wf:
        await run_until_idle(wf, timeout=WAIT)
        # This test measures wall time, so it waits on it.
        cpu = time.process_time()
        await asyncio.sleep(0.5)
        used = time.process_time() - cpu
    assert used < 0.05, f"an idle workflow used {used:.3f}s of CPU in 0.5s"
