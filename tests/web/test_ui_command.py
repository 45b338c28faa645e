"""``conveyor ui``: the UI and API over a store URL, in a process of its own."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

from conveyor import connect

from ._seed import seed

pytestmark = pytest.mark.processes
BOUND = 30.0


class UI:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def line(self, pattern: str) -> re.Match[str]:
        """Read output until a line matches ``pattern``."""
        assert self.process.stdout is not None
        async with asyncio.timeout(BOUND):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(f"no line matched {pattern!r}: {self.lines}")
                text = raw.decode().rstrip()
                self.lines.append(text)
                found = re.search(pattern, text)
                if found:
                    return found


async def start(*args: str) -> UI:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conveyor",
        "ui",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    return UI(process)


@pytest.fixture
async def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    async with connect(url) as backend:
        await seed(backend)
    return url


async def test_ui_serves_reads_freely_and_actions_with_the_printed_token(store_url: str) -> None:
    ui = await start("--store", store_url, "--port", "0")
    address = (await ui.line(r"conveyor UI on (http://127\.0\.0\.1:\d+/)"))[1]
    token = (await ui.line(r"token for actions \(shown once\): (\S+)"))[1]
    async with httpx.AsyncClient(base_url=address) as client:
        runs = (await client.get("/api/runs", params={"run_state": "running"})).json()["runs"]
        assert runs
        run_id = runs[0]["run_id"]
        refused = await client.post(f"/api/runs/{run_id}/pause")
        assert refused.status_code == 401
        paused = await client.post(
            f"/api/runs/{run_id}/pause", headers={"Authorization": f"Bearer {token}"}
        )
        assert paused.json()["run_state"] == "Paused"
    ui.process.send_signal(signal.SIGINT)
    async with asyncio.timeout(BOUND):
        assert await ui.process.wait() == 0
    rest = await ui.process.stdout.read() if ui.process.stdout else b""
    assert token not in rest.decode()  # printed once
    async with connect(store_url) as backend:
        record = await backend.record_store.lookup(run_id)
    assert str(record.run_state) == "Paused"


async def test_ui_beyond_loopback_needs_the_token_to_read(store_url: str) -> None:
    ui = await start("--store", store_url, "--host", "0.0.0.0", "--port", "0", "--token", "s3")
    port = (await ui.line(r"conveyor UI on http://0\.0\.0\.0:(\d+)/"))[1]
    await ui.line("reading needs the token too")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/api/runs")).status_code == 401
        ok = await client.get("/api/runs", headers={"Authorization": "Bearer s3"})
        assert ok.status_code == 200
    assert all("s3" not in line for line in ui.lines)  # a given token is never printed
    ui.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(BOUND):
        assert await ui.process.wait() == 0


async def test_ui_over_a_missing_file_is_one_line_error(tmp_path: Path) -> None:
    ui = await start("--store", f"sqlite:///{tmp_path / 'nope.db'}", "--port", "0")
    async with asyncio.timeout(BOUND):
        code = await ui.process.wait()
    err = (await ui.process.stderr.read()).decode() if ui.process.stderr else ""
    assert code == 1
    assert "no such database file" in err
    assert "Traceback" not in err
    assert not (tmp_path / "nope.db").exists()
