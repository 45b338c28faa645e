"""``conveyor worker`` subprocesses for tests: start one on a store, read its log, signal it.

The worker runs in ``tests/cli`` (so ``_worker_app`` imports), with the app's journal and
gate files in the test's folder.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

__all__ = ["BOUND", "HERE", "Worker", "journal", "until"]

HERE = Path(__file__).parent
BOUND = 30.0
"""Upper bound (seconds) for anything the tests wait on; normally reached much sooner."""


class Worker:
    """One ``conveyor worker`` subprocess and what it logged."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self._reader = asyncio.ensure_future(self._read())
        self.started = asyncio.get_running_loop().create_future()

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode().rstrip()
            self.log.append(line)
            if "worker started" in line and not self.started.done():
                self.started.set_result(line)

    @classmethod
    async def start(cls, tmp: Path, url: str, *args: str) -> Worker:
        env = {
            **os.environ,
            "CONVEYOR_TEST_JOURNAL": str(tmp / "journal"),
            "CONVEYOR_TEST_GATE": str(tmp / "gate"),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "conveyor",
            "worker",
            *(args or ("_worker_app:builder",)),
            "--store",
            url,
            cwd=HERE,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        worker = cls(process)
        done = asyncio.ensure_future(process.wait())
        await asyncio.wait({worker.started, done}, timeout=BOUND, return_when="FIRST_COMPLETED")
        if not worker.started.done():
            await worker.kill()
            raise AssertionError("the worker did not start:\n" + "\n".join(worker.log))
        return worker

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def exit_code(self) -> int:
        async with asyncio.timeout(BOUND):
            code = await self.process.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self._reader


async def until(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Wait (bounded) until ``check`` holds: a condition, looked at every 10 ms."""
    async with asyncio.timeout(BOUND):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)


def journal(tmp: Path) -> list[str]:
    path = tmp / "journal"
    return path.read_text().splitlines() if path.exists() else []
