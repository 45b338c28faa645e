"""The commands take a deployment's parts from other URLs (``--events``, ``--roles``,
``--timeouts``, or ``$CONVEYOR_EVENTS`` and the like), and refuse, in one line, a store
whose events go elsewhere; ``conveyor migrate --move-events`` records a new location."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from conveyor.cli import cli


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_a_store_whose_events_go_elsewhere_needs_them_named(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'records.db'}"
    events = f"sqlite:///{tmp_path / 'events.db'}"

    # Given a store migrated with its events in another file
    code, out = invoke("migrate", "--store", store, "--events", events)
    assert code == 0, out

    # When a command opens the store without naming the events
    code, out = invoke("runs", "list", "--store", store)

    # Then it is refused in one line that says where the events go
    assert code == 1, out
    assert out.count("\n") == 1, out
    assert f"events go to sqlite:///{tmp_path / 'events.db'}" in out, out

    # And with the events named (as an option or in the environment) it works
    assert invoke("runs", "list", "--store", store, "--events", events)[0] == 0
    assert invoke("runs", "list", "--store", store, env={"CONVEYOR_EVENTS": events})[0] == 0


def test_move_events_records_the_new_location(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'records.db'}"
    events = f"sqlite:///{tmp_path / 'events.db'}"
    assert invoke("migrate", "--store", store)[0] == 0
    assert invoke("runs", "list", "--store", store)[0] == 0  # events in the store: recorded

    # When the (drained) deployment's events move to another file
    code, out = invoke("migrate", "--store", store, "--events", events, "--move-events")

    # Then that is recorded: the old configuration is refused, the new one works
    assert code == 0, out
    assert f"events now go to sqlite:///{tmp_path / 'events.db'}" in out, out
    assert invoke("runs", "list", "--store", store)[0] == 1
    assert invoke("runs", "list", "--store", store, "--events", events)[0] == 0

    # And moving them back to the store's own log works the same way
    code, out = invoke("migrate", "--store", store, "--move-events")
    assert code == 0, out
    assert "events now go to the record store's own event log" in out, out
    assert invoke("runs", "list", "--store", store)[0] == 0
