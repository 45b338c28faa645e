"""The ``conveyor`` command line."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console
from rich.table import Table

from .._builder import Builder
from .._capabilities import HistoryEntry, KeepsHistory, ListsRuns, RecordsFailures, RunQuery
from .._clock import SystemClock
from .._connect import Backend, connect, migrate
from .._control import move_latest
from .._errors import InvalidTransition, RecordNotFound, VersionConflict, WorkflowError
from .._protocols import Order, RecordFilter
from .._record import Failure, Record
from .._runstate import RunState
from .._urls import redact, scrub
from .._workflow import Workflow
from .._writer import RecordWriter
from ..diagram import Direction

__all__ = ["cli", "main"]

R = TypeVar("R")
_LEVELS = ["debug", "info", "warning", "error"]
console = Console()
STORE = click.option(
    "--store",
    "url",
    required=True,
    envvar="CONVEYOR_STORE",
    help="Backend URL: sqlite:///path/to/file.db, postgresql://user@host/db (or $CONVEYOR_STORE).",
)


def _run(coro: Awaitable[R], url: str = "") -> R:
    """Run ``coro``; a conveyor error becomes one line (``url``'s password masked in it)."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except RecordNotFound as exc:
        raise click.ClickException(scrub(f"run not found: {exc}", url)) from None
    except (InvalidTransition, VersionConflict) as exc:
        raise click.ClickException(scrub(str(exc), url)) from None
    except WorkflowError as exc:
        raise click.ClickException(scrub(str(exc), url)) from None


@asynccontextmanager
async def _existing(url: str) -> AsyncIterator[Backend]:
    """Open a backend that must already exist (never create an empty SQLite file)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None
        if path is None or not path.exists():
            raise click.ClickException(f"no such database file: {path or redact(url)}")
    async with connect(url) as backend:
        yield backend


@click.group()
@click.version_option(package_name="conveyor")
def cli() -> None:
    """conveyor: durable, event-driven workflows on your own databases."""


# ---------------------------------------------------------------------------- runs


@cli.group()
def runs() -> None:
    """List, inspect and control runs in a record store."""


_STATES = {s.name.lower(): s for s in RunState if s is not RunState.UNKNOWN}


JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


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


@runs.command("list")
@STORE
@click.option("--workflow", default="", help="Only this workflow.")
@click.option("--foreign-id", "foreign_ids", multiple=True, help="Only these foreign IDs.")
@click.option("--state", "states", multiple=True, type=click.Choice(sorted(_STATES)))
@click.option("--status", "statuses", multiple=True, type=int, help="Only these statuses.")
@click.option("--foreign-id-prefix", default=None, help="Only foreign IDs starting so.")
@click.option("--limit", default=25, show_default=True)
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
    statuses: tuple[int, ...],
    offset: int,
    oldest_first: bool,
    newest_first: bool,
    as_json: bool,
) -> None:
    """List runs, newest first, a page at a time (--cursor continues)."""
    run_states = tuple(_STATES[s] for s in states)

    async def go() -> tuple[list[Record], str | None]:
        async with _existing(url) as backend:
            store = backend.record_store
            if isinstance(store, ListsRuns) and offset == 0 and len(foreign_ids) <= 1:
                page = await store.list_runs(
                    RunQuery(
                        workflow_name=workflow,
                        foreign_id=foreign_ids[0] if foreign_ids else None,
                        foreign_id_prefix=foreign_id_prefix,
                        statuses=statuses,
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
                    foreign_ids=foreign_ids, statuses=statuses, run_states=run_states
                ),
            )
            return list(found), None

    records, following = _run(go(), url)
    if as_json:
        _print_json({"runs": [_record_json(r) for r in records], "cursor": following})
        return
    table = Table(show_lines=False)
    # A run ID is never cut: other columns give way (so it can be copied into `runs show`).
    table.add_column("run id", no_wrap=True, min_width=36)
    for column in ("workflow", "foreign id", "status", "state", "version", "updated"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.run_id,
            r.workflow_name,
            r.foreign_id,
            r.meta.status_description or str(r.status),
            _state(r),
            str(r.meta.version),
            r.updated_at.isoformat(timespec="seconds"),
        )
    console.print(table)
    if not records:
        console.print("no runs match")
    elif following is not None:
        click.echo(f"more: --cursor {following}")


@runs.command("history")
@STORE
@click.argument("run_id")
@JSON
def run_history(url: str, run_id: str, as_json: bool) -> None:
    """Show every version of a run, with the attempts that failed on each."""

    async def go() -> list[HistoryEntry]:
        async with _existing(url) as backend:
            store = backend.record_store
            if not isinstance(store, KeepsHistory):
                raise click.ClickException("this store keeps no run history")
            await store.lookup(run_id)  # an unknown run is an error, not an empty history
            return list(await store.history(run_id))

    entries = _run(go(), url)
    if as_json:
        _print_json(
            [
                {
                    "version": e.version,
                    "status": e.status,
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
        table.add_row(str(e.version), str(e.status), str(e.run_state), e.reason, e.at.isoformat())
        for f in e.failures:
            table.add_row("", "", f"attempt {f.attempt} failed", f.message, f.failed_at.isoformat())
    console.print(table)


def _state(record: Record) -> str:
    """A run's state for tables; a row the store could not decode says so, and why."""
    if record.run_state is RunState.UNKNOWN:
        return f"UNDECODABLE ({record.meta.run_state_reason})"
    return str(record.run_state)


@runs.command("show")
@STORE
@click.argument("run_id")
@JSON
def show_run(url: str, run_id: str, as_json: bool) -> None:
    """Show one run's record and object."""

    async def go() -> tuple[Record, Failure | None]:
        async with _existing(url) as backend:
            store = backend.record_store
            record = await store.lookup(run_id)
            failure = None
            if isinstance(store, RecordsFailures):
                found = await store.failures(run_id, record.meta.version)
                failure = found[-1] if found else None
            return record, failure

    r, failure = _run(go(), url)
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
            }
        )
        return
    table = Table(show_header=False)
    for key, value in (
        ("run id", r.run_id),
        ("workflow", r.workflow_name),
        ("foreign id", r.foreign_id),
        ("status", f"{r.meta.status_description} ({r.status})"),
        ("run state", str(r.run_state)),
        ("reason", r.meta.run_state_reason),
        ("version", str(r.meta.version)),
        ("created", r.created_at.isoformat()),
        ("updated", r.updated_at.isoformat()),
        ("trace origin", r.meta.trace_origin),
    ):
        table.add_row(key, value)
    if failure is not None:
        due = failure.next_attempt_at
        table.add_row(
            "last failure",
            f"attempt {failure.attempt} by {failure.process} at "
            f"{failure.failed_at.isoformat()}: {failure.message}",
        )
        table.add_row(
            "next attempt", "none (paused)" if due is None else f"{due.isoformat()} (UTC)"
        )
    console.print(table)
    try:
        console.print_json(r.object.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        console.print(repr(r.object))


def _control(to: RunState, needs_reason: bool) -> Callable[..., None]:
    async def go(url: str, run_id: str, reason: str) -> Record:
        async with _existing(url) as backend:
            writer = RecordWriter(backend.record_store, SystemClock())
            return await move_latest(writer, run_id, to, reason)

    def command(url: str, run_id: str, reason: str = "") -> None:
        record = _run(go(url, run_id, reason), url)
        console.print(f"{record.run_id}: {record.run_state} (version {record.meta.version})")

    return command


for _name, _action, _reason, _help in (
    ("pause", RunState.PAUSED, True, "Pause a run (Initiated or Running)."),
    ("resume", RunState.RUNNING, False, "Resume a paused run."),
    ("cancel", RunState.CANCELLED, True, "Cancel a run (Running or Paused)."),
    ("delete", RunState.REQUESTED_DATA_DELETED, True, "Delete a finished run's data."),
):
    _fn = _control(_action, _reason)
    if _reason:
        _fn = click.option("--reason", default="", help="Why (kept with the run).")(_fn)
    runs.command(_name, help=_help)(STORE(click.argument("run_id")(_fn)))


# ---------------------------------------------------------------------------- tools


@cli.command()
@click.argument("target")
@click.option("--direction", type=click.Choice(["LR", "TB", "RL", "BT"]), default="LR")
def diagram(target: str, direction: Direction) -> None:
    """Print the Mermaid diagram of a workflow or builder given as module:attribute
    (an attribute that is a function is called to get one)."""
    from ..diagram import mermaid

    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("expected module:attribute", param_hint="TARGET")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.ClickException(f"cannot import {module_name!r}: {exc}") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise click.ClickException(f"{module_name!r} has no attribute {attr!r}")
    if callable(obj) and not isinstance(obj, Builder | Workflow):
        try:
            obj = obj()  # a factory that returns a Builder or Workflow
        except TypeError as exc:
            raise click.ClickException(
                f"{target} is a function that cannot be called without arguments ({exc}): "
                "name a Builder, a Workflow, or a factory that takes none"
            ) from None
    try:
        click.echo(mermaid(obj, direction), nl=False)
    except TypeError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@STORE
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="CONVEYOR_UI_TOKEN",
    default=None,
    help="Token for actions (or $CONVEYOR_UI_TOKEN); without one a token is made and printed.",
)
@click.option(
    "--allow-host",
    "allowed_hosts",
    multiple=True,
    help="A Host header to serve besides the local names (repeat; for a proxy's name).",
)
def ui(url: str, host: str, port: int, token: str | None, allowed_hosts: tuple[str, ...]) -> None:
    """Serve the web UI and its JSON API (/api) over a store.

    Anyone who can reach it may read; actions need the token. Bound to anything but
    loopback (--host 0.0.0.0), reading needs the token too. Stop with Ctrl-C.
    """
    from ._ui import run_ui

    code = _run(run_ui(url, host, port, token, allowed_hosts, console, _existing), url)
    sys.exit(code)


@cli.command("migrate")
@STORE
def migrate_command(url: str) -> None:
    """Create or upgrade the schema of a SQL backend."""
    _run(migrate(url), url)
    console.print(f"schema is up to date: {redact(url)}")


@cli.command()
@click.argument("targets", nargs=-1, required=True, metavar="MODULE:ATTR...")
@STORE
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a signal gives started attempts to finish before the worker exits 1.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics (/metrics) and readiness (/ready) on this port.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--log-level", default="info", show_default=True, type=click.Choice(_LEVELS))
def worker(
    targets: tuple[str, ...],
    url: str,
    grace: float,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Run the background processes of workflows until SIGTERM or SIGINT drains them.

    Each MODULE:ATTR names a Builder (built on the store's adapters) or a factory
    (backend) -> Workflow. On a signal, every process finishes the attempts it started,
    writes and acknowledges them, and releases its role; exits 0 once drained, 1 if
    --grace passes first; a second signal exits at once (130 / 143).
    """
    from ._worker import WorkerError, run_worker

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code = _run(
            run_worker(
                list(targets),
                url,
                grace=grace,
                metrics_port=metrics_port,
                metrics_host=metrics_host,
            ),
            url,
        )
    except WorkerError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@cli.command()
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--workers", default=3, show_default=True, help="Processes running the workflow.")
@click.option("--orders", default=24, show_default=True)
@click.option("--payment-timeout", default=2.0, show_default=True, help="Seconds.")
def demo(db: Path | None, workers: int, orders: int, payment_timeout: float) -> None:
    """Run a sample order workflow on a SQLite file with a few worker processes."""
    from ._demo import run_demo

    if workers < 1 or orders < 1:
        raise click.BadParameter("--workers and --orders must be at least 1")
    if db is None:
        db = Path(tempfile.mkdtemp(prefix="conveyor-demo-")) / "demo.db"
    _run(run_demo(db.resolve(), workers, orders, payment_timeout, console))


@cli.command("demo-worker", hidden=True)
@STORE
@click.option("--payment-timeout", default=2.0)
def demo_worker(url: str, payment_timeout: float) -> None:
    from ._demo import run_demo_worker

    _run(run_demo_worker(url, payment_timeout), url)


def main() -> None:
    cli()
