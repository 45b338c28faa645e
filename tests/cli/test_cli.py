"""The `conveyor` command line, against real SQLite files."""

from __future__ import annotations

import asyncio
import enum
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import conveyor
from conveyor import Builder, Run, RunState
from conveyor.cli import cli


class Status(enum.IntEnum):
    UNKNOWN = 0
    OPEN = 1
    WAITING = 2
    CLOSED = 3


@dataclass
class Ticket:
    title: str = ""


async def open_ticket(run: Run[Ticket, Status]) -> Status:
    return Status.WAITING


builder = Builder("tickets", Ticket, Status)
builder.add_step(Status.OPEN, open_ticket, Status.WAITING)
builder.add_callback(Status.WAITING, lambda run, payload: Status.CLOSED, Status.CLOSED)


async def seed(url: str) -> list[str]:
    """Two runs waiting for a callback, one closed."""
    async with conveyor.connect(url) as backend:
        wf = builder.build(backend.streamer, backend.record_store, backend.role_scheduler)
        async with wf, asyncio.timeout(10):
            ids = [await wf.trigger(f"t-{i}", initial=Ticket(title=f"#{i}")) for i in range(3)]
            for fid, rid in zip(("t-0", "t-1", "t-2"), ids, strict=True):
                await wf.wait(fid, rid, Status.WAITING)
            await wf.callback("t-2", Status.WAITING, b"")
            await wf.wait("t-2", ids[2], Status.CLOSED)
        return ids


@pytest.fixture
def db(tmp_path: Path) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    return url, asyncio.run(seed(url))


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_runs_list_filters_by_state(db: tuple[str, list[str]]) -> None:
    url, _ = db
    code, out = invoke("runs", "list", "--store", url, "--state", "completed")
    assert code == 0, out
    assert "t-2" in out
    assert "t-0" not in out


def test_runs_show_prints_the_record_and_object(db: tuple[str, list[str]]) -> None:
    url, ids = db
    code, out = invoke("runs", "show", "--store", url, ids[0])
    assert code == 0, out
    assert "WAITING" in out
    assert '"title": "#0"' in out


def test_pause_resume_cancel_and_delete_move_runs(db: tuple[str, list[str]]) -> None:
    url, ids = db
    assert invoke("runs", "pause", "--store", url, ids[0], "--reason", "check")[0] == 0
    assert invoke("runs", "resume", "--store", url, ids[0])[0] == 0
    assert invoke("runs", "cancel", "--store", url, ids[1], "--reason", "dup")[0] == 0
    code, out = invoke("runs", "delete", "--store", url, ids[2])
    assert code == 0, out

    async def states() -> list[tuple[RunState, str]]:
        async with conveyor.connect(url) as backend:
            records = [await backend.record_store.lookup(r) for r in ids]
            return [(r.run_state, r.meta.run_state_reason) for r in records]

    assert asyncio.run(states()) == [
        (RunState.RUNNING, ""),
        (RunState.CANCELLED, "dup"),
        (RunState.REQUESTED_DATA_DELETED, ""),
    ]


def test_a_disallowed_move_fails_with_the_reason(db: tuple[str, list[str]]) -> None:
    url, ids = db
    code, out = invoke("runs", "resume", "--store", url, ids[0])  # not paused
    assert code == 1
    assert "cannot resume a run that is Running" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--store", "sqlite:///nowhere/missing.db"], "no such database file", id="missing-file"
        ),
        pytest.param(["--store", "orders.db"], "not a backend URL", id="bad-url"),
        pytest.param(["--store", "cassandra://x"], "unknown backend scheme", id="unknown-scheme"),
    ],
)
def test_bad_stores_fail_with_a_clear_message(args: list[str], message: str) -> None:
    code, out = invoke("runs", "list", *args)
    assert code == 1
    assert message in out


def test_unknown_run_id_fails(db: tuple[str, list[str]]) -> None:
    url, _ = db
    code, out = invoke("runs", "show", "--store", url, "no-such-run")
    assert code == 1
    assert "run not found" in out


def test_migrate_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert invoke("migrate", "--store", url)[0] == 0
    assert invoke("migrate", "--store", url)[0] == 0
    code, out = invoke("runs", "list", "--store", url)
    assert code == 0, out
    assert "no runs match" in out


def test_diagram_of_a_module_attribute() -> None:
    code, out = invoke("diagram", "tests.cli.test_cli:builder", "--direction", "TB")
    assert code == 0, out
    assert out.startswith("```mermaid\n")
    assert "\tdirection TB\n" in out
    assert invoke("diagram", "tests.cli.test_cli:nothing")[0] == 1
    assert invoke("diagram", "no_such_module:x")[0] == 1
    code, out = invoke("diagram", "missing-colon")
    assert code == 1
    assert out == (
        "Error: Invalid value for TARGET: expected module:attribute (see: cli diagram --help)\n"
    )


def test_a_usage_mistake_is_one_line_and_exit_1() -> None:
    code, out = invoke("runs", "list")
    assert code == 1
    assert out == "Error: Missing option '--store'. (see: cli runs list --help)\n"
    code, out = invoke("runs", "list", "--store", "sqlite:///x.db", "--limit", "many")
    assert code == 1
    assert out.count("\n") == 1
    assert "'many' is not a valid integer" in out


@pytest.mark.processes
def test_demo_runs_orders_to_the_end_across_processes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "conveyor.cli", "demo", "--db", str(tmp_path / "demo.db"),
            "--workers", "2", "--orders", "8", "--payment-timeout", "0.5", "--no-ui",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "8 orders finished" in proc.stdout
    assert "across 2 processes" in proc.stdout


def test_runs_list_is_newest_first_and_prints_json(db: tuple[str, list[str]]) -> None:
    url, ids = db
    code, out = invoke("runs", "list", "--store", url, "--json")
    assert code == 0, out
    listed = json.loads(out)["runs"]
    assert [r["run_id"] for r in listed] == list(reversed(ids))
    assert listed[0]["status_name"] == "CLOSED"
    code, out = invoke("runs", "list", "--store", url, "--json", "--oldest-first")
    assert [r["run_id"] for r in json.loads(out)["runs"]] == ids


def test_runs_list_pages_with_a_cursor_and_filters_by_prefix(
    db: tuple[str, list[str]],
) -> None:
    url, ids = db
    code, out = invoke("runs", "list", "--store", url, "--json", "--limit", "2")
    first = json.loads(out)
    assert [r["run_id"] for r in first["runs"]] == [ids[2], ids[1]]
    assert first["cursor"]
    code, out = invoke(
        "runs", "list", "--store", url, "--json", "--limit", "2", "--cursor", first["cursor"]
    )
    second = json.loads(out)
    assert ([r["run_id"] for r in second["runs"]], second["cursor"]) == ([ids[0]], None)
    code, out = invoke("runs", "list", "--store", url, "--foreign-id-prefix", "t-1")
    assert code == 0, out
    assert ids[1] in out
    assert ids[0] not in out


def test_run_ids_are_never_cut_in_a_narrow_table(db: tuple[str, list[str]]) -> None:
    url, ids = db
    result = CliRunner().invoke(
        cli, ["runs", "list", "--store", url], env={"COLUMNS": "80"}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    for run_id in ids:
        assert run_id in result.output


def test_runs_show_and_history_print_json(db: tuple[str, list[str]]) -> None:
    url, ids = db
    code, out = invoke("runs", "show", "--store", url, "--json", ids[2])
    assert code == 0, out
    shown = json.loads(out)
    assert (shown["run_state"], shown["object"], shown["failure"]) == (
        "Completed",
        {"title": "#2"},
        None,
    )
    code, out = invoke("runs", "history", "--store", url, "--json", ids[2])
    assert code == 0, out
    history = json.loads(out)
    assert [(e["version"], e["run_state"]) for e in history] == [
        (1, "Initiated"),
        (2, "Running"),
        (3, "Completed"),
    ]
    code, out = invoke("runs", "history", "--store", url, ids[2])
    assert code == 0, out
    assert "Completed" in out


def test_history_of_an_unknown_run_fails_in_one_line(db: tuple[str, list[str]]) -> None:
    url, _ = db
    code, out = invoke("runs", "history", "--store", url, "nope")
    assert code == 1
    assert "not found" in out


def needs_an_argument(name: str) -> Builder[Ticket, Status]:
    return builder


def test_diagram_of_a_factory_that_needs_arguments_fails_in_one_line() -> None:
    code, out = invoke("diagram", "tests.cli.test_cli:needs_an_argument")
    assert code == 1
    assert "cannot be called without arguments" in out
    assert "Traceback" not in out
