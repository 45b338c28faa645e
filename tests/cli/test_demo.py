"""`conveyor demo`: the UI beside the orders, a clean Ctrl-C at any moment, the temporary
folder, and a demo without the web extra."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from conveyor.cli import cli

from ._workers import BOUND

pytestmark = pytest.mark.processes


@dataclass
class Demo:
    """A ``conveyor demo`` subprocess whose temporary folders go under ``tmp``."""

    process: asyncio.subprocess.Process
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    reading: asyncio.Future[None] | None = None

    @classmethod
    async def start(cls, tmp: Path, *args: str) -> Demo:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "conveyor", "demo", *args,
            env={**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        demo = cls(process)
        demo.reading = asyncio.ensure_future(demo._read_errors())
        return demo

    async def _read_errors(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.err.append(raw.decode())

    async def line(self, containing: str) -> str:
        """The first line of output with ``containing`` in it (waiting for it, bounded)."""
        assert self.process.stdout is not None
        for line in self.out:
            if containing in line:
                return line
        async with asyncio.timeout(BOUND):
            async for raw in self.process.stdout:
                self.out.append(raw.decode())
                if containing in self.out[-1]:
                    return self.out[-1]
        raise AssertionError(f"no line with {containing!r}:\n{self.text()}")

    async def exit_code(self) -> int:
        assert self.process.stdout is not None
        async with asyncio.timeout(BOUND):
            self.out += [raw.decode() async for raw in self.process.stdout]
            code = await self.process.wait()
            if self.reading is not None:
                await self.reading
        return code

    def text(self) -> str:
        return "".join(self.out) + "\n--- stderr:\n" + "".join(self.err)


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=BOUND) as response:
        return response.status, response.read()


def demo_folders(tmp: Path) -> list[Path]:
    return list(tmp.glob("conveyor-demo-*"))


def leftovers(tmp: Path) -> list[str]:
    """The demo's temporary folders still under ``tmp``, and processes still using them."""
    found = [p.name for p in demo_folders(tmp)]
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(tmp) in cmdline and proc.name != str(os.getpid()):
            found.append(f"process {proc.name}: {cmdline}")
    return found


def assert_stopped_cleanly(demo: Demo, code: int, tmp: Path) -> None:
    errors = "".join(demo.err)
    assert code == 130, demo.text()
    assert "Traceback" not in errors, demo.text()
    assert "never retrieved" not in errors, demo.text()
    assert "stopped" in "".join(demo.out), demo.text()
    assert leftovers(tmp) == [], demo.text()


# Each moment is a line the demo prints; orders stay in flight until their payment
# timeout (10 s), so a Ctrl-C after an early line comes while they run.
@pytest.mark.parametrize(
    "moment",
    [
        pytest.param("demo: ", id="before-the-workers-start"),
        pytest.param("processes run the workflow", id="workers-started"),
        pytest.param("conveyor UI on", id="orders-in-flight"),
        pytest.param("token for actions", id="orders-in-flight-later"),
    ],
)
async def test_a_ctrl_c_while_orders_run_stops_everything_cleanly(
    tmp_path: Path, moment: str
) -> None:
    demo = await Demo.start(tmp_path, "--workers", "3", "--orders", "40", "--payment-timeout", "10")
    await demo.line(moment)
    demo.process.send_signal(signal.SIGINT)
    assert_stopped_cleanly(demo, await demo.exit_code(), tmp_path)
    assert "orders finished" not in "".join(demo.out)


async def test_once_the_orders_are_done_the_ui_serves_until_ctrl_c(tmp_path: Path) -> None:
    # Given a demo whose orders all finished
    demo = await Demo.start(tmp_path, "--workers", "2", "--orders", "6", "--payment-timeout", "0.3")
    address = await demo.line("conveyor UI on")
    await demo.line("the UI keeps serving")
    assert "6 orders finished" in "".join(demo.out)
    # Then its UI answers, with the demo's runs
    match = re.search(r"http://127\.0\.0\.1:\d+/", address)
    assert match is not None, address
    status, body = await asyncio.to_thread(fetch, match.group(0) + "api/runs")
    assert status == 200
    assert b"order-005" in body
    # and a Ctrl-C stops it cleanly
    demo.process.send_signal(signal.SIGINT)
    assert_stopped_cleanly(demo, await demo.exit_code(), tmp_path)


async def test_with_no_ui_the_demo_ends_by_itself_and_removes_its_folder(tmp_path: Path) -> None:
    demo = await Demo.start(
        tmp_path, "--no-ui", "--workers", "2", "--orders", "4", "--payment-timeout", "0.3"
    )
    assert await demo.exit_code() == 0, demo.text()
    out = "".join(demo.out)
    assert "4 orders finished" in out
    assert "conveyor UI" not in out
    assert leftovers(tmp_path) == []


async def test_keep_keeps_the_temporary_folder_and_says_where(tmp_path: Path) -> None:
    demo = await Demo.start(
        tmp_path, "--no-ui", "--keep", "--workers", "1", "--orders", "2", "--payment-timeout", "0.3"
    )
    assert await demo.exit_code() == 0, demo.text()
    (folder,) = demo_folders(tmp_path)
    assert (folder / "demo.db").exists()
    assert f"kept the demo's records in {folder}" in "".join(demo.out)


def test_without_the_web_extra_the_demo_says_so_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "conveyor.web._serve", None)  # cannot be imported
    args = ["demo", "--db", str(tmp_path / "demo.db"), "--workers", "1", "--orders", "3"]
    result = CliRunner().invoke(cli, [*args, "--payment-timeout", "0.3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if "web UI" in x]
    assert "pip install 'conveyor[web]'" in line
    assert "3 orders finished" in result.output
    assert "conveyor UI on" not in result.output


async def test_a_ui_port_in_use_fails_in_one_line(tmp_path: Path) -> None:
    # A subprocess: UIServer leaves its unbound socket to the garbage collector when the
    # bind fails, which this test process would turn into an error.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = await Demo.start(tmp_path, "--ui-port", str(port))
        code = await demo.exit_code()
    assert code == 1, demo.text()
    (error,) = demo.err  # one line
    assert error.startswith(f"Error: cannot serve the UI on 127.0.0.1:{port}: "), error
    assert leftovers(tmp_path) == []
