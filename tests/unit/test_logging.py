"""Logs go through the Logger contract; debug lines only in debug mode."""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass

import pytest

from conveyor import Builder, Run
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler


class Status(enum.IntEnum):
    UNKNOWN = 0
    START = 1
    END = 2


@dataclass
class Obj:
    n: int = 0


class ListLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def debug(self, msg: str, **meta: object) -> None:
        self.lines.append(("debug", msg, meta))

    def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
        self.lines.append(("error", msg, {**meta, "exc": exc}))


async def run_once(logger: object | None, debug: bool, fail: bool = False) -> None:
    failed: list[int] = []

    async def step(run: Run[Obj, Status]) -> Status:
        if fail and not failed:
            failed.append(1)
            raise RuntimeError("boom")
        return Status.END

    b = Builder("logged", Obj, Status)
    b.add_step(Status.START, step, Status.END).with_options(err_backoff=0.001)
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        logger=logger,  # type: ignore[arg-type]
        debug=debug,
    )
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("fid")
        await wf.wait("fid", run_id, Status.END)


async def test_debug_lines_only_in_debug_mode() -> None:
    quiet, chatty = ListLogger(), ListLogger()
    await run_once(quiet, debug=False)
    await run_once(chatty, debug=True)
    assert [line for line in quiet.lines if line[0] == "debug"] == []
    written = [meta for level, msg, meta in chatty.lines if msg == "record written"]
    assert [(m["status"], m["run_state"], m["version"]) for m in written] == [
        ("START", "Initiated", 1),
        ("END", "Completed", 2),
    ]
    assert any(msg == "role acquired" for _, msg, _ in chatty.lines)


async def test_a_failed_attempt_is_logged_with_the_run_and_its_exception() -> None:
    logger = ListLogger()
    await run_once(logger, debug=False, fail=True)
    errors = [(msg, meta) for level, msg, meta in logger.lines if level == "error"]
    assert len(errors) == 1
    msg, meta = errors[0]
    assert msg.startswith("step failed (next attempt in ")
    assert str(meta["exc"]) == "boom"
    assert meta["process"] == "start-consumer-1-of-1"
    assert (meta["workflow"], meta["foreign_id"], meta["status"], meta["attempt"]) == (
        "logged",
        "fid",
        "START",
        1,
    )
    assert meta["error"] == "RuntimeError: boom"


async def test_repeated_failures_log_the_traceback_once_then_one_line_each() -> None:
    logger = ListLogger()
    calls = 0

    async def step(run: Run[Obj, Status]) -> Status:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise RuntimeError(f"boom {calls}")
        return Status.END

    b = Builder("logged", Obj, Status)
    b.add_step(Status.START, step, Status.END).with_options(err_backoff=0.001)
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        logger=logger,
    )
    async with wf, asyncio.timeout(10):
        run_id = await wf.trigger("fid")
        await wf.wait("fid", run_id, Status.END)
    errors = [meta for level, _, meta in logger.lines if level == "error"]
    assert [(m["attempt"], m["error"]) for m in errors] == [
        (1, "RuntimeError: boom 1"),
        (2, "RuntimeError: boom 2"),
        (3, "RuntimeError: boom 3"),
    ]
    assert [m["exc"] is not None for m in errors] == [True, False, False]
    assert {m["run_id"] for m in errors} == {run_id}


async def test_default_logger_is_the_standard_logging_module(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="conveyor"):
        await run_once(None, debug=True, fail=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "conveyor"]
    assert any(m.startswith("step failed (next attempt in") for m in messages)
    assert any(m.startswith("record written") for m in messages)
    failed = next(r for r in caplog.records if r.getMessage().startswith("step failed"))
    fields = failed.conveyor  # type: ignore[attr-defined]
    assert {"workflow", "foreign_id", "run_id", "status", "attempt"} <= set(fields)


def test_the_default_logger_reports_an_unreachable_backend_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from conveyor import AdapterError, AdapterUnavailable
    from conveyor._logging import StdLogger  # the default logger: private, tested as a unit

    logger = StdLogger()
    with caplog.at_level(logging.ERROR, logger="conveyor"):
        logger.error("process error", AdapterUnavailable("database restarting"), role="r")
        logger.error("process error", AdapterError("bad row"), role="r")

    away, broken = caplog.records
    assert away.exc_info is None
    assert "database restarting" in away.getMessage()
    assert broken.exc_info is not None  # anything else keeps its traceback
