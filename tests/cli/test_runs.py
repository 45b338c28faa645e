"""`conveyor runs` over a SQLite store seeded with runs in every state (``web._seed``):
short run IDs, status names, JSON from every command, retry, and what a delete keeps."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import conveyor
from conveyor import RunState
from conveyor._capabilities import KeepsHistory
from conveyor._record import Record
from conveyor.cli import cli
from web._seed import Seeded, seed

RECORD_KEYS = {
    "run_id", "workflow", "foreign_id", "status", "status_name", "run_state", "reason",
    "version", "created_at", "updated_at",
}  # fmt: skip


@dataclass
class Store:
    url: str
    runs: Seeded

    def invoke(self, *args: str) -> tuple[int, str]:
        """``conveyor ARGS --store URL``: its exit code and what it printed."""
        result = CliRunner().invoke(cli, [*args, "--store", self.url], catch_exceptions=False)
        return result.exit_code, result.output

    def json(self, *args: str) -> object:
        code, out = self.invoke(*args, "--json")
        assert code == 0, out
        return json.loads(out)

    def record(self, run_id: str) -> Record:
        async def go() -> Record:
            async with conveyor.connect(self.url) as backend:
                return await backend.record_store.lookup(run_id)

        return asyncio.run(go())


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    """One seeded file per module (seeding takes a while); each test gets a copy."""
    path = tmp_path_factory.mktemp("seeded") / "parcels.db"

    async def go() -> Seeded:
        async with conveyor.connect(f"sqlite:///{path}") as backend:
            # 19 runs: more than 16, so two run IDs share their first hex digit
            return await seed(backend, waiting=12)

    return path, asyncio.run(go())


@pytest.fixture
def store(seeded: tuple[Path, Seeded], tmp_path: Path) -> Store:
    path, runs = seeded
    copy = tmp_path / "parcels.db"
    shutil.copy(path, copy)
    return Store(f"sqlite:///{copy}", runs)


def unique_prefix(run_id: str, others: list[str]) -> str:
    """The shortest start of ``run_id`` (8 characters at least) no other run ID has."""
    for n in range(8, len(run_id)):
        if not any(o != run_id and o.startswith(run_id[:n]) for o in others):
            return run_id[:n]
    return run_id


def shared_prefix(run_ids: list[str]) -> str:
    """A start that at least two of ``run_ids`` have."""
    by_first: dict[str, list[str]] = {}
    for run_id in run_ids:
        by_first.setdefault(run_id[0], []).append(run_id)
    first, second = next(ids for ids in by_first.values() if len(ids) > 1)[:2]
    n = next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
    return first[:n]


def one_line_error(out: str) -> bool:
    return out.startswith("Error: ") and out.count("\n") == 1 and "Traceback" not in out


# ---------------------------------------------------------------------------- run IDs


def test_show_history_and_every_action_take_a_unique_prefix_of_a_run_id(store: Store) -> None:
    # Given a waiting run named by a short start of its ID
    run_id = store.runs.waiting[0]
    short = unique_prefix(run_id, store.runs.all())
    # When it is shown, its history read, and it is paused, resumed and cancelled by it
    shown = store.json("runs", "show", short)
    history = store.json("runs", "history", short)
    moves = [store.json("runs", action, short) for action in ("pause", "resume", "cancel")]
    # Then each command found that run
    assert isinstance(shown, dict)
    assert shown["run_id"] == run_id
    assert isinstance(history, list)
    assert [e["run_state"] for e in history] == ["Initiated", "Running"]
    assert [(m["run_id"], m["run_state"]) for m in moves if isinstance(m, dict)] == [
        (run_id, "Paused"),
        (run_id, "Running"),
        (run_id, "Cancelled"),
    ]
    assert store.json("runs", "delete", short)
    assert store.record(run_id).run_state is RunState.REQUESTED_DATA_DELETED


@pytest.mark.parametrize(
    "command", ["show", "history", "pause", "resume", "cancel", "delete", "retry"]
)
def test_an_ambiguous_prefix_fails_in_one_line_and_moves_nothing(
    store: Store, command: str
) -> None:
    prefix = shared_prefix(store.runs.all())
    code, out = store.invoke("runs", command, prefix)
    assert code == 1
    assert one_line_error(out), out
    assert f"{prefix!r} starts more than one run ID" in out
    assert "give more of it" in out


def test_a_prefix_of_no_run_fails_in_one_line(store: Store) -> None:
    code, out = store.invoke("runs", "pause", "zzzz")
    assert code == 1
    assert one_line_error(out), out
    assert "run not found: no run ID starts with 'zzzz'" in out


# ---------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    ("action", "which", "state"),
    [
        pytest.param("pause", "waiting", "Paused", id="pause"),
        pytest.param("resume", "paused", "Running", id="resume"),
        pytest.param("cancel", "waiting", "Cancelled", id="cancel"),
        pytest.param("delete", "completed", "Requested Data Deleted", id="delete"),
        pytest.param("retry", "failing", "Initiated", id="retry"),
    ],
)
def test_every_action_prints_the_new_record_as_json(
    store: Store, action: str, which: str, state: str
) -> None:
    run_id: str = getattr(store.runs, which)[0]
    before = store.record(run_id)
    moved = store.json("runs", action, run_id, "--reason", "by the test")
    assert isinstance(moved, dict)
    assert set(moved) == RECORD_KEYS  # the shape `runs list --json` gives each run
    assert (moved["run_id"], moved["run_state"], moved["version"]) == (
        run_id,
        state,
        before.meta.version + 1,
    )
    after = store.record(run_id)
    assert (after.meta.version, str(after.run_state)) == (moved["version"], state)


def test_list_show_and_history_print_json_with_status_names(store: Store) -> None:
    listed = store.json("runs", "list", "--limit", "100")
    assert isinstance(listed, dict)
    assert {r["status_name"] for r in listed["runs"]} == {"PLACED", "PACKED", "SHIPPED"}
    assert all(set(r) == RECORD_KEYS for r in listed["runs"])
    shown = store.json("runs", "show", store.runs.failing[0])
    assert isinstance(shown, dict)
    assert shown["status_name"] == "PLACED"
    assert shown["failure"]["next_attempt_at"] is not None
    assert "retry" in shown["actions"]
    history = store.json("runs", "history", store.runs.completed[0])
    assert isinstance(history, list)
    assert [(e["status"], e["status_name"]) for e in history] == [
        (1, "PLACED"),
        (2, "PACKED"),
        (3, "SHIPPED"),
    ]


# ---------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("given", ["PACKED", "packed", "Packed", "2"])
def test_runs_list_takes_a_status_by_name_in_any_case_or_by_number(
    store: Store, given: str
) -> None:
    listed = store.json("runs", "list", "--status", given, "--limit", "100")
    assert isinstance(listed, dict)
    packed = {
        *store.runs.waiting, *store.runs.paused, *store.runs.cancelled, store.runs.injected,
    }  # fmt: skip
    assert {r["run_id"] for r in listed["runs"]} == packed


def test_runs_list_takes_several_statuses_repeated_or_comma_separated(store: Store) -> None:
    one = store.json("runs", "list", "--status", "placed,shipped", "--limit", "100")
    other = store.json("runs", "list", "--status", "placed", "--status", "3", "--limit", "100")
    assert isinstance(one, dict)
    assert isinstance(other, dict)
    expected = {*store.runs.failing, *store.runs.completed}
    assert {r["run_id"] for r in one["runs"]} == expected
    assert {r["run_id"] for r in other["runs"]} == expected


def test_runs_list_takes_run_states_by_name_repeated_or_comma_separated(store: Store) -> None:
    listed = store.json("runs", "list", "--state", "Paused,cancelled", "--limit", "100")
    assert isinstance(listed, dict)
    expected = {*store.runs.paused, *store.runs.cancelled, store.runs.injected}
    assert {r["run_id"] for r in listed["runs"]} == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--status", "LOST"],
            "status 'LOST' is not a status of any registered workflow",
            id="unknown-status",
        ),
        pytest.param(
            ["--workflow", "parcels", "--status", "packed,LOST"],
            "status 'LOST' is not a status of workflow 'parcels'",
            id="unknown-status-of-a-workflow",
        ),
        pytest.param(["--state", "asleep"], "unknown run state 'asleep'", id="unknown-state"),
    ],
)
def test_an_unknown_status_or_state_fails_in_one_line(
    store: Store, args: list[str], message: str
) -> None:
    code, out = store.invoke("runs", "list", *args)
    assert code == 1
    assert one_line_error(out), out
    assert message in out


def test_the_history_table_names_each_status(store: Store) -> None:
    code, out = store.invoke("runs", "history", store.runs.completed[0])
    assert code == 0, out
    for name in ("PLACED", "PACKED", "SHIPPED"):
        assert name in out


# ---------------------------------------------------------------------------- retry


def test_retry_asks_for_an_attempt_now_of_a_run_waiting_for_its_next_one(store: Store) -> None:
    # Given a run whose step raised and that waits (an hour) for its next attempt
    run_id = store.runs.failing[0]
    # When it is retried
    code, out = store.invoke("runs", "retry", run_id, "--reason", "carrier is back")
    # Then its next version is written with the reason, and the history keeps it
    assert code == 0, out
    assert f"{run_id}: Initiated: retry requested: carrier is back (version 2)" in out
    history = store.json("runs", "history", run_id)
    assert isinstance(history, list)
    assert history[-1]["reason"] == "retry requested: carrier is back"
    # and once retried it no longer waits, so a second retry is refused
    code, out = store.invoke("runs", "retry", run_id)
    assert code == 1
    assert one_line_error(out), out
    assert "not waiting for its next attempt" in out


@pytest.mark.parametrize("which", ["waiting", "completed", "paused"])
def test_retry_of_a_run_not_waiting_for_an_attempt_fails_in_one_line(
    store: Store, which: str
) -> None:
    run_id: str = getattr(store.runs, which)[0]
    version = store.record(run_id).meta.version
    code, out = store.invoke("runs", "retry", run_id)
    assert code == 1
    assert one_line_error(out), out
    assert "cannot retry a run that is not waiting for its next attempt" in out
    assert store.record(run_id).meta.version == version


# ---------------------------------------------------------------------------- reasons


def test_a_delete_without_a_reason_keeps_why_the_run_was_cancelled(store: Store) -> None:
    # Given a run cancelled with a reason
    run_id = store.runs.waiting[1]
    assert store.invoke("runs", "cancel", run_id, "--reason", "customer changed mind")[0] == 0
    # When its data is deleted without one
    code, out = store.invoke("runs", "delete", run_id)
    assert code == 0, out
    # Then the record and the history both keep the cancel's reason
    record = store.record(run_id)
    assert (record.run_state, record.meta.run_state_reason) == (
        RunState.REQUESTED_DATA_DELETED,
        "customer changed mind",
    )
    history = store.json("runs", "history", run_id)
    assert isinstance(history, list)
    assert [(e["run_state"], e["reason"]) for e in history[-2:]] == [
        ("Cancelled", "customer changed mind"),
        ("Requested Data Deleted", "customer changed mind"),
    ]
    code, out = store.invoke("runs", "history", run_id)
    assert code == 0, out
    assert out.count("customer changed mind") == 2


def test_the_history_keeps_every_versions_reason_when_a_later_one_differs(
    store: Store,
) -> None:
    run_id = store.runs.waiting[2]
    store.invoke("runs", "pause", run_id, "--reason", "first")
    store.invoke("runs", "cancel", run_id, "--reason", "second")

    async def reasons() -> list[str]:
        async with conveyor.connect(store.url) as backend:
            assert isinstance(backend.record_store, KeepsHistory)
            return [e.reason for e in await backend.record_store.history(run_id)]

    assert asyncio.run(reasons())[-2:] == ["first", "second"]


# ---------------------------------------------------------------------------- tables


def test_run_ids_and_everything_else_are_whole_in_a_pipe_at_80_columns(store: Store) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "conveyor", "runs", "list", "--store", store.url, "--limit", "100"],
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for run_id in store.runs.all():
        assert run_id in proc.stdout
    assert 'evil-<script>alert("x")</script>' in proc.stdout  # no column is cut in a pipe
    assert "…" not in proc.stdout


def _in_a_terminal(args: list[str], columns: int) -> str:
    """What ``conveyor ARGS`` prints to a terminal ``columns`` wide (escapes removed)."""
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "NO_COLOR": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "conveyor", *args], stdout=child, stderr=child, env=env
    ) as proc:
        os.close(child)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal (EIO)
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 0, b"".join(chunks).decode()
    os.close(main)
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode())


@pytest.mark.parametrize("columns", [60, 80])
def test_run_ids_are_never_cut_in_a_narrow_terminal(store: Store, columns: int) -> None:
    out = _in_a_terminal(["runs", "list", "--store", store.url, "--limit", "100"], columns)
    for run_id in store.runs.all():
        assert run_id in out
    assert "left out to fit the terminal: updated" in out
    assert max(len(line) for line in out.splitlines()) <= max(columns, 40)


# ---------------------------------------------------------------------------- help


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if command.hidden:
            continue
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


@pytest.mark.parametrize("path", list(_commands(cli)), ids=" ".join)
def test_every_command_explains_itself_and_the_store_urls_it_takes(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]  # type: ignore[assignment]
    assert command.help, f"conveyor {' '.join(path)} has no help"
    if any(p.name == "url" for p in command.params):
        assert "sqlite:///" in result.output
        assert "postgresql://" in result.output
