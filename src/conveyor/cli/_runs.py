"""``conveyor runs``: list, inspect and act on the runs of a store (through ``Operator``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .._capabilities import HistoryEntry, KeepsHistory, ListsRuns, RunQuery
from .._control import MAX_ATTEMPTS
from .._errors import VersionConflict
from .._operator import ACTIONS, Action, Operator, RunDetail
from .._protocols import Order, RecordFilter
from .._record import Failure, Record
from .._runstate import RunState
from ._common import STORE, console, existing, run

__all__ = ["runs"]

RUN_STATES: dict[str, RunState] = {s.name.lower(): s for s in RunState if s is not RunState.UNKNOWN}
"""Run states by the names ``--state`` takes (``running``, ``data_deleted``, ...)."""

RUN = click.argument("run_id", metavar="RUN")
JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


@click.group()
def runs() -> None:
    """List, inspect and control the runs in a store.

    Every command reads the store named by --store URL (or $CONVEYOR_STORE), needs no
    workflow code, and prints JSON with --json. RUN is a run ID or any start of one
    that only one run has (say the first 8 characters `runs list` prints).

    \b
    Examples:
      export CONVEYOR_STORE=sqlite:///orders.db
      conveyor runs list --state running --status PACKED
      conveyor runs show 312a28fe
      conveyor runs history 312a28fe --json
      conveyor runs pause 312a28fe --reason "customer asked to wait"
      conveyor runs retry 312a28fe
    """


@asynccontextmanager
async def _operator(url: str) -> AsyncIterator[Operator]:
    async with existing(url) as backend:
        yield Operator(backend.record_store)


def _split(values: Iterable[str]) -> list[str]:
    """Repeated and comma-separated values alike: ``--status a,b --status c``."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _run_states(values: Iterable[str]) -> tuple[RunState, ...]:
    """Run states by name (``running``, ``Data Deleted``, ``data-deleted``) or number."""
    found: list[RunState] = []
    for text in _split(values):
        key = text.lower().replace(" ", "_").replace("-", "_")
        if key.isdigit() and int(key) in {int(s) for s in RUN_STATES.values()}:
            found.append(RunState(int(key)))
        elif key in RUN_STATES:
            found.append(RUN_STATES[key])
        else:
            raise click.ClickException(
                f"unknown run state {text!r}: one of {', '.join(RUN_STATES)}"
            )
    return tuple(found)


def _record_json(r: Record) -> dict[str, object]:
    return {
        "run_id": r.run_id,
        "workflow": r.workflow_name,
        "foreign_id": r.foreign_id,
        "status": r.status,
        "status_name": r.meta.status_description,
        "run_state": str(r.run_state),
        "reason": r.meta.run_state_reason,
        "version": r.meta.version,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
    }


def _failure_json(f: Failure) -> dict[str, object]:
    return {
        "version": f.version,
        "attempt": f.attempt,
        "process": f.process,
        "error_type": f.error_type,
        "message": f.message,
        "failed_at": f.failed_at.isoformat(),
        "next_attempt_at": None if f.next_attempt_at is None else f.next_attempt_at.isoformat(),
    }


def _print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _row(table: Table, *cells: str) -> None:
    """Add a row of plain text (a foreign ID or a reason like ``[x]`` is not markup)."""
    table.add_row(*(Text(c) for c in cells))


def _print_table(table: Table, droppable: Iterable[str] = ()) -> None:
    """Print ``table`` to fit a terminal, or at its full width into a pipe or a file.

    Nothing that goes to a pipe is cut. In a terminal too narrow for the whole table the
    ``droppable`` columns (by header, the first dropped first) are left out while that
    makes it fit, then the other columns give way to the run ID, which is never cut (so
    it can be copied into `runs show`).
    """
    wide = console.options.update_width(1_000_000)
    if not console.is_terminal:
        width = max(console.width, Measurement.get(console, wide, table).maximum)
        Console(file=console.file, width=width).print(table)
        return
    dropped: list[str] = []
    for header in droppable:
        if Measurement.get(console, wide, table).maximum <= console.width:
            break
        table.columns = [c for c in table.columns if c.header != header]
        dropped.append(header)
    console.print(table)
    if dropped:
        note = f"(left out to fit the terminal: {', '.join(dropped)}; --json has all)"
        console.print(note, style="dim", highlight=False)


def _state(record: Record) -> str:
    """A run's state for tables; a row the store could not decode says so, and why."""
    if record.run_state is RunState.UNKNOWN:
        return f"UNDECODABLE ({record.meta.run_state_reason})"
    return str(record.run_state)


# ---------------------------------------------------------------------------- list


@runs.command("list", short_help="List runs, newest first.")
@STORE
@click.option("--workflow", default="", help="Only the runs of this workflow (by name).")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    help=f"Only runs in these run states (repeat, or comma-separate): {', '.join(RUN_STATES)}.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help="Only runs at these statuses, each a name (PACKED or packed, as the workflow "
    "registered it) or a number (repeat, or comma-separate).",
)
@click.option("--foreign-id", "foreign_ids", multiple=True, help="Only these foreign IDs.")
@click.option("--foreign-id-prefix", default=None, help="Only foreign IDs that start so.")
@click.option(
    "--limit", default=25, show_default=True, type=click.IntRange(min=1), help="Runs per page."
)
@click.option("--cursor", default=None, help="Continue after the page that printed it.")
@click.option("--offset", default=0, show_default=True, hidden=True)
@click.option("--oldest-first", is_flag=True, help="Oldest runs first (default: newest).")
@click.option("--newest-first", is_flag=True, hidden=True)  # the default now; still accepted
@JSON
def list_runs(
    url: str,
    workflow: str,
    foreign_ids: tuple[str, ...],
    foreign_id_prefix: str | None,
    limit: int,
    cursor: str | None,
    states: tuple[str, ...],
    statuses: tuple[str, ...],
    offset: int,
    oldest_first: bool,
    newest_first: bool,
    as_json: bool,
) -> None:
    """List runs, newest first, a page at a time.

    A page that has more after it ends with `more: --cursor ...`: pass that to see the
    next. Filters combine (a run must match each one given).

    \b
    Examples:
      conveyor runs list --store sqlite:///orders.db --state running,paused
      conveyor runs list --workflow orders --status PACKED --limit 100 --json
    """
    run_states = _run_states(states)

    async def go() -> tuple[list[Record], str | None]:
        async with _operator(url) as op:
            numbers = await op.statuses(_split(statuses), workflow)
            store = op.store
            if isinstance(store, ListsRuns) and offset == 0 and len(foreign_ids) <= 1:
                page = await store.list_runs(
                    RunQuery(
                        workflow_name=workflow,
                        foreign_id=foreign_ids[0] if foreign_ids else None,
                        foreign_id_prefix=foreign_id_prefix,
                        statuses=numbers,
                        run_states=run_states,
                        newest_first=not oldest_first,
                    ),
                    limit=limit,
                    cursor=cursor,
                )
                return list(page.records), page.cursor
            if cursor is not None or foreign_id_prefix is not None:
                raise click.ClickException("this store lists runs by offset only")
            found = await store.list(
                workflow,
                offset=offset,
                limit=limit,
                order=Order.ASC if oldest_first else Order.DESC,
                filter=RecordFilter(
                    foreign_ids=foreign_ids, statuses=numbers, run_states=run_states
                ),
            )
            return list(found), None

    records, following = run(go(), url)
    if as_json:
        _print_json({"runs": [_record_json(r) for r in records], "cursor": following})
        return
    table = Table(show_lines=False)
    table.add_column("run id", no_wrap=True, min_width=36)
    for column in ("workflow", "foreign id", "status", "state", "version", "updated"):
        table.add_column(column)
    for r in records:
        _row(
            table,
            r.run_id,
            r.workflow_name,
            r.foreign_id,
            r.meta.status_description or str(r.status),
            _state(r),
            str(r.meta.version),
            r.updated_at.isoformat(timespec="seconds"),
        )
    _print_table(table, droppable=("updated", "version", "workflow"))
    if not records:
        console.print("no runs match")
    elif following is not None:
        click.echo(f"more: --cursor {following}")


# ---------------------------------------------------------------------------- show


@runs.command("show", short_help="Show one run, its failure and its actions.")
@STORE
@RUN
@JSON
def show_run(url: str, run_id: str, as_json: bool) -> None:
    """Show one run: its record, its latest failure, what may be done to it, its object.

    \b
    Example:
      conveyor runs show 312a28fe --store sqlite:///orders.db
    """

    async def go() -> RunDetail:
        async with _operator(url) as op:
            return await op.detail(run_id)

    detail = run(go(), url)
    r, failure = detail.record, detail.failure
    if as_json:
        try:
            obj: object = json.loads(r.object)
        except (UnicodeDecodeError, json.JSONDecodeError):
            obj = r.object.decode("utf-8", "replace")
        _print_json(
            {
                **_record_json(r),
                "object": obj,
                "failure": None if failure is None else _failure_json(failure),
                "actions": list(detail.actions),
            }
        )
        return
    table = Table(show_header=False)
    for key, value in (
        ("run id", r.run_id),
        ("workflow", r.workflow_name),
        ("foreign id", r.foreign_id),
        ("status", f"{r.meta.status_description} ({r.status})"),
        ("run state", _state(r)),
        ("reason", r.meta.run_state_reason),
        ("version", str(r.meta.version)),
        ("created", r.created_at.isoformat()),
        ("updated", r.updated_at.isoformat()),
        ("trace origin", r.meta.trace_origin),
    ):
        _row(table, key, value)
    if failure is not None:
        due = failure.next_attempt_at
        _row(
            table,
            "last failure",
            f"attempt {failure.attempt} by {failure.process} at "
            f"{failure.failed_at.isoformat()}: {failure.message}",
        )
        _row(
            table,
            "next attempt",
            "none (paused)"
            if due is None
            else f"{due.isoformat()} (UTC; `conveyor runs retry` starts it now)",
        )
    _row(table, "actions", ", ".join(detail.actions) or "none (the run is finished)")
    _print_table(table)
    try:
        console.print_json(r.object.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        console.print(repr(r.object))


# ---------------------------------------------------------------------------- history


@runs.command("history", short_help="Show every version of a run.")
@STORE
@RUN
@JSON
def run_history(url: str, run_id: str, as_json: bool) -> None:
    """Show every version of a run (its status, run state and reason), oldest first,
    with the attempts that failed on each.

    \b
    Example:
      conveyor runs history 312a28fe --store sqlite:///orders.db
    """

    async def go() -> tuple[list[HistoryEntry], dict[int, str]]:
        async with _operator(url) as op:
            if not isinstance(op.store, KeepsHistory):
                raise click.ClickException("this store keeps no run history")
            record = await op.resolve(run_id)  # an unknown run is an error, not no history
            entries = list(await op.store.history(record.run_id))
            names = {
                e.status: await op.status_name(record.workflow_name, e.status) for e in entries
            }
            if names.get(record.status) == str(record.status) and record.meta.status_description:
                names[record.status] = record.meta.status_description  # none registered
            return entries, names

    entries, names = run(go(), url)
    if as_json:
        _print_json(
            [
                {
                    "version": e.version,
                    "status": e.status,
                    "status_name": names[e.status],
                    "run_state": str(e.run_state),
                    "reason": e.reason,
                    "at": e.at.isoformat(),
                    "failures": [_failure_json(f) for f in e.failures],
                }
                for e in entries
            ]
        )
        return
    table = Table()
    for column in ("version", "status", "state", "reason", "at"):
        table.add_column(column)
    for e in entries:
        _row(table, str(e.version), names[e.status], str(e.run_state), e.reason, e.at.isoformat())
        for f in e.failures:
            _row(table, "", "", f"attempt {f.attempt} failed", f.message, f.failed_at.isoformat())
    _print_table(table)


# ---------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class _Help:
    short: str
    text: str
    reason: str
    example: str


_KEPT = "without one the run keeps its earlier reason"
_ACTION_HELP: dict[Action, _Help] = {
    "pause": _Help(
        "Pause a run (Initiated or Running).",
        "Pause a run that is Initiated or Running: its steps wait until `runs resume`.",
        f"Why it is paused, kept with the run and in its history ({_KEPT}).",
        'pause 312a28fe --reason "customer asked to wait"',
    ),
    "resume": _Help(
        "Resume a paused run.",
        "Resume a paused run: it goes on from the status it was paused at.",
        "Why it is resumed, kept in its history (without one the reason is cleared).",
        "resume 312a28fe",
    ),
    "cancel": _Help(
        "Cancel a run (Running or Paused).",
        "Cancel a run that is Running or Paused: it stops for good at its status.",
        f"Why it is cancelled, kept with the run and in its history ({_KEPT}).",
        'cancel 312a28fe --reason "duplicate order"',
    ),
    "delete": _Help(
        "Delete a finished run's object.",
        "Ask for the object of a finished run (Completed or Cancelled) to be deleted: a "
        "running workflow erases it and keeps the record, so the run stays listed.",
        f"Why, kept with the run and in its history ({_KEPT}, e.g. why it was cancelled).",
        'delete 312a28fe --reason "customer asked to be forgotten"',
    ),
    "retry": _Help(
        "Retry a failing run now.",
        "Retry a failing run now, instead of at its next attempt: for a run whose step "
        "raised and that waits for a retry (`runs show` prints when). A running workflow "
        "attempts it at once; the run's history says a retry was asked for.",
        "Why, kept in the run's history (as 'retry requested: <why>').",
        'retry 312a28fe --reason "the carrier is back"',
    ),
}


async def _act(url: str, action: Action, run_id: str, reason: str) -> Record:
    """``action`` on the run's latest version, read again if another writer moved it."""
    async with _operator(url) as op:
        conflict: VersionConflict | None = None
        for _ in range(MAX_ATTEMPTS):
            try:
                return await op.act(action, run_id, reason)
            except VersionConflict as exc:
                conflict = exc
        assert conflict is not None
        raise conflict


def _action_command(action: Action) -> click.Command:
    about = _ACTION_HELP[action]

    @STORE
    @RUN
    @click.option("--reason", default="", help=about.reason)
    @click.option("--json", "as_json", is_flag=True, help="Print the run's new record as JSON.")
    def command(url: str, run_id: str, reason: str, as_json: bool) -> None:
        record = run(_act(url, action, run_id, reason), url)
        if as_json:
            _print_json(_record_json(record))
            return
        why = f": {record.meta.run_state_reason}" if record.meta.run_state_reason else ""
        click.echo(f"{record.run_id}: {_state(record)}{why} (version {record.meta.version})")

    text = (
        f"{about.text}\n\nRUN is a run ID or a start of one that only one run has; prints "
        f"the run's new state and version.\n\n\b\nExample:\n"
        f"  conveyor runs {about.example} --store sqlite:///orders.db"
    )
    return click.command(action, help=text, short_help=about.short)(command)


for _action in ACTIONS:
    runs.add_command(_action_command(_action))


@runs.command("move", short_help="Move the runs waiting at a status to another status.")
@STORE
@click.option("--workflow", required=True, help="The workflow whose runs move.")
@click.option("--from", "source", required=True, help="The status they wait at (name or number).")
@click.option("--to", "destination", required=True, help="The status to move them to.")
@click.option("--reason", default="", help="Why, kept in each run's history.")
@click.option("--json", "as_json", is_flag=True, help="Print the moved and skipped runs as JSON.")
def move_runs(
    url: str, workflow: str, source: str, destination: str, reason: str, as_json: bool
) -> None:
    """Move every run in flight (Initiated, Running or Paused) of a workflow at one status
    to another: for runs stranded at a status a new definition dropped or no longer
    consumes (`conveyor check` lists them). Each run keeps its state and object; its next
    version is at the new status, whose step, callback or timeout then takes it. A run that
    moves meanwhile is skipped and counted. Statuses are names the registered definitions
    know (a status dropped from the code's enum: give its number).

    \b
    Example:
      conveyor runs move --workflow orders --from AWAITING_PAYMENT --to PLACED \\
          --reason "payment is a step now" --store postgresql://app@db/orders
    """

    async def go() -> tuple[list[Record], list[str], list[tuple[str, str]]]:
        async with _operator(url) as op:
            start, end = await op.statuses([source, destination], workflow)
            moved: list[Record] = []
            changed: list[str] = []
            refused: dict[str, str] = {}
            while True:
                outcome = await op.move_status(workflow, start, end, reason)
                moved += outcome.moved
                changed += outcome.changed
                refused.update(outcome.refused)
                if not outcome.moved:  # nothing left, or only runs that moved meanwhile
                    return moved, changed, list(refused.items())

    moved, changed, refused = run(go(), url)
    if as_json:
        _print_json(
            {
                "moved": [_record_json(r) for r in moved],
                "changed": changed,
                "refused": [{"run_id": r, "why": why} for r, why in refused],
            }
        )
        return
    click.echo(
        f"moved {len(moved)} run(s) from {source} to {destination}"
        + (f"; {len(changed)} moved meanwhile (run the command again)" if changed else "")
        + (f"; {len(refused)} refused" if refused else "")
    )
