"""The ``conveyor`` command line."""

from __future__ import annotations

import functools
import importlib
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from .._builder import Builder
from .._capabilities import DefinitionRecord, KeepsDefinitions, PinsEventLocation
from .._connect import Backend, event_location, migrate
from .._event import delete_topic, run_state_change_topic, topic
from .._migration import MigrationReport
from .._urls import redact
from .._workflow import Workflow
from ..diagram import Direction
from ._common import STORE, console
from ._common import existing as _existing
from ._common import existing_unchecked as _existing_unchecked
from ._common import parts as _parts
from ._common import run as _run
from ._runs import runs

__all__ = ["cli", "main"]

_LEVELS = ["debug", "info", "warning", "error"]


class _OneLineErrors(click.Group):
    """The root command: every user mistake is one line on stderr and exit status 1.

    Click's own usage errors (a missing option, a bad value) would print the usage and
    exit 2; conveyor's errors (``ClickException``) already print one line.
    """

    def main(  # one signature for both of click's overloads
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,  # Any: click's own keyword arguments
    ) -> Any:  # Any: what the command returns (click's type too)
        call = functools.partial(super().main, args, prog_name, complete_var, False, **extra)
        if not standalone_mode:
            return call()
        try:
            return call()
        except click.UsageError as exc:
            where = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{where}", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)


@click.group(cls=_OneLineErrors)
@click.version_option(package_name="conveyor")
def cli() -> None:
    """conveyor: durable, event-driven workflows on your own databases.

    The commands that read or write runs take --store URL (or $CONVEYOR_STORE):
    sqlite:///relative/path.db, sqlite:////absolute/path.db, or
    postgresql://user:password@host:5432/dbname.

    \b
    Start here:
      conveyor demo                                 a sample workflow, with the web UI
      conveyor migrate --store sqlite:///orders.db  create a store's schema
      conveyor worker myapp:builder --store URL     run your workflow's processes
      conveyor check myapp:builder --store URL      what deploying it does to runs in flight
      conveyor runs list --store URL                see what the runs are doing
      conveyor ui --store URL                       the web UI over a store

    `conveyor COMMAND --help` tells more about each.
    """


cli.add_command(runs)


# ---------------------------------------------------------------------------- tools


@cli.command(short_help="Print the Mermaid diagram of a workflow.")
@click.argument("target")
@click.option(
    "--direction",
    type=click.Choice(["LR", "TB", "RL", "BT"]),
    default="LR",
    show_default=True,
    help="Which way the graph flows: left to right, top to bottom, or back.",
)
def diagram(target: str, direction: Direction) -> None:
    """Print the Mermaid diagram of a workflow's graph (its statuses and steps).

    TARGET is module:attribute, naming a Builder, a Workflow, or a function that takes
    no arguments and returns one; the module is imported from the current folder.

    \b
    Example:
      conveyor diagram myapp.orders:builder --direction TB > orders.md
    """
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
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free one, printed).",
)
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

    \b
    Examples:
      conveyor ui --store sqlite:///orders.db
      conveyor ui --store postgresql://app@db/orders --host 0.0.0.0 --port 8080
    """
    from ._ui import run_ui

    code = _run(run_ui(url, host, port, token, allowed_hosts, console, _existing), url)
    sys.exit(code)


@cli.command("migrate")
@STORE
@click.option(
    "--move-events",
    is_flag=True,
    help="Record --events (or the store itself, without it) as where the events now go: "
    "the last step of moving a drained deployment's events (docs/deployments.md).",
)
def migrate_command(url: str, move_events: bool) -> None:
    """Create or upgrade the schema of a SQL backend, and say what was done.

    With --events (or --roles, --timeouts) it then opens the deployment once, which records
    where its events go if nothing is recorded yet (processes configured otherwise are
    refused from then on). --move-events records them as given, whatever was recorded.
    With --events kafka://… it creates the Kafka topics of every workflow the store
    registered (partitions and replication from the URL) and says which.
    """
    report = _run(migrate(url), url)
    said: list[str] = []
    if move_events:
        where = _run(_move_events(url), url)
        console.print(f"events now go to {where}", markup=False, highlight=False, soft_wrap=True)
    elif _parts():
        said = _run(_open_once(url), url)
    # one line of plain text: a URL (an IPv6 host, a path) is not markup
    summary = migration_summary(report, redact(url))
    for line in [summary, *said]:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


async def _open_once(url: str) -> list[str]:
    """Open the deployment once (which records where its events go); with events on
    Kafka, create the topics of the workflows its store registered. What it did, in lines."""
    async with _existing(url) as backend:
        events = _parts().get("events", "")
        if urlsplit(events).scheme == "kafka":
            return await _create_kafka_topics(backend, redact(url))
        return []


async def _create_kafka_topics(backend: Backend, shown_url: str) -> list[str]:
    """Create the Kafka topics of every workflow whose definition the store keeps (its
    status topics, from the definition's graph, and its run-state-change and delete
    topics), with the events URL's ``partitions`` and ``replication``; say what was
    created and what was there."""
    from ..adapters.kafka import KafkaEventStreamer

    streamer = backend.streamer
    if not isinstance(streamer, KafkaEventStreamer):  # pragma: no cover - connect's choice
        return [f"no Kafka topics created: the events are on {type(streamer).__name__}"]
    store = backend.record_store
    if not isinstance(store, KeepsDefinitions):
        return [
            f"no Kafka topics created: {shown_url} keeps no workflow definitions "
            "(create them with KafkaEventStreamer.create_topics, or create_topics=true)"
        ]
    definitions = await store.definitions()
    if not definitions:
        return [
            f"no Kafka topics created: no workflow has registered its definition in "
            f"{shown_url} yet (a workflow registers when it starts: run `conveyor migrate` "
            "again then, or start it once with create_topics=true)"
        ]
    topics = [t for d in definitions for t in workflow_topics(d)]
    created = set(await streamer.create_topics(topics))
    kafka = {t: streamer.topic(t) for t in topics}
    new = [kafka[t] for t in topics if kafka[t] in created]
    there = [kafka[t] for t in topics if kafka[t] not in created]
    options = streamer.options
    lines = []
    if new:
        lines.append(
            f"created {len(new)} Kafka topics ({options.partitions} partitions, replication "
            f"{options.replication}): {', '.join(new)}"
        )
    if there:
        lines.append(f"{len(there)} Kafka topics already exist: {', '.join(there)}")
    return lines


def workflow_topics(definition: DefinitionRecord) -> list[str]:
    """The conveyor topics a workflow's events go to: one per status of its graph, its
    run-state-change topic and its delete topic (from its registered definition)."""
    document = json.loads(definition.document)
    name = definition.workflow_name
    statuses = sorted({int(n) for n in document["nodes"]})
    return [
        *(topic(name, status) for status in statuses),
        run_state_change_topic(name),
        delete_topic(name),
    ]


async def _move_events(url: str) -> str:
    location = event_location(_parts().get("events"), url)
    async with _existing_unchecked(url) as backend:
        store = backend.record_store
        if not isinstance(store, PinsEventLocation):
            raise click.ClickException(
                f"{redact(url)} does not record where its events go: nothing to move"
            )
        await store.repin_event_location(location)
    return "the record store's own event log" if location == "store" else location


def migration_summary(report: MigrationReport | None, shown_url: str) -> str:
    """One line on what ``migrate`` did at ``shown_url`` (already redacted)."""
    if report is None:
        return f"no schema to create or upgrade in {shown_url}"
    if not report.changed:
        return f"schema is up to date (version {report.to_version}) in {shown_url}"
    tables = ""
    if report.tables:
        where = f"schema {report.schema}: " if report.schema else ""
        tables = f" ({where}{'' if report.created else 'new '}tables {', '.join(report.tables)})"
    if report.created:
        return f"created schema version {report.to_version} in {shown_url}{tables}"
    steps = ", ".join(f"{m.version} {m.name}" for m in report.applied)
    return (
        f"upgraded schema from version {report.from_version} to {report.to_version} "
        f"in {shown_url}: {steps}{tables}"
    )


@cli.command(short_help="What deploying workflow definitions would do to runs in flight.")
@click.argument("targets", nargs=-1, required=True, metavar="MODULE:ATTR...")
@STORE
@click.option(
    "--samples",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Run IDs shown per finding, and stored objects tried against the object type.",
)
def check(targets: tuple[str, ...], url: str, samples: int) -> None:
    """Compare workflow definitions with the ones the store registered, and list what
    deploying them would do to runs in flight (Initiated, Running, Paused).

    STRANDED: runs waiting at a status the new definition drops, or no longer moves runs
    from (no step, callback or timeout), and sampled runs whose stored object the new
    object type cannot decode. Changed: destinations removed from a step, callbacks,
    timeouts or steps removed, a renamed object type. Exits 1 when runs would be
    stranded, so it can gate a deployment; 0 otherwise. Each MODULE:ATTR is what
    `conveyor worker` takes.

    \b
    Example:
      conveyor check myapp.orders:builder --store postgresql://app@db/orders
    """
    from ._check import check_targets, report_lines
    from ._worker import WorkerError

    try:
        checks = _run(check_targets(list(targets), url, samples), url)
    except WorkerError as exc:
        raise click.ClickException(str(exc)) from None
    for result in checks:
        for line in report_lines(result):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    sys.exit(1 if any(c.strands_runs for c in checks) else 0)


@cli.command(short_help="Run the background processes of workflows.")
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
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address metrics bind to."
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(_LEVELS),
    help="The least severe log messages printed (to stderr).",
)
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
    --grace passes first; a second signal exits at once (130 / 143). Start as many
    workers as you like: they share the work through the store.

    \b
    Example (myapp/orders.py defines `builder = Builder(...)`):
      conveyor worker myapp.orders:builder --store postgresql://app@db/orders
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
                parts=_parts(),
            ),
            url,
        )
    except WorkerError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@cli.command(short_help="Run a sample order workflow, with the web UI.")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The SQLite file to keep the runs in (made if missing, kept after). "
    "Default: one in a new temporary folder, removed at exit unless --keep.",
)
@click.option(
    "--workers",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Processes running the workflow: this one and workers - 1 others.",
)
@click.option(
    "--orders", default=24, show_default=True, type=click.IntRange(min=1), help="Orders to place."
)
@click.option(
    "--payment-timeout",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds an order waits for its payment before it times out.",
)
@click.option(
    "--ui/--no-ui",
    default=True,
    show_default=True,
    help="Serve the web UI over the demo's runs (needs the web extra) until Ctrl-C.",
)
@click.option(
    "--ui-port",
    default=0,
    type=click.IntRange(0, 65535),
    help="The UI's port on 127.0.0.1 (default: a free one, printed).",
)
@click.option("--keep", is_flag=True, help="Keep the temporary folder (and say where it is).")
def demo(
    db: Path | None,
    workers: int,
    orders: int,
    payment_timeout: float,
    ui: bool,
    ui_port: int,
    keep: bool,
) -> None:
    """Run a sample order workflow on a SQLite file with a few worker processes.

    Orders are placed, validated, paid (most of them, the rest time out) and shipped
    by this process and --workers - 1 others; a table shows them move and, at the end,
    which process did what. The web UI serves the runs meanwhile (its address and token
    are printed) and, once every order is finished, until Ctrl-C. With --no-ui the demo
    ends by itself. Ctrl-C stops it cleanly at any moment (exit code 130).

    \b
    Examples:
      conveyor demo
      conveyor demo --no-ui --orders 100 --workers 4
      conveyor demo --keep   # then: conveyor runs list --store sqlite:///<printed path>
    """
    import shutil

    from ._demo import DemoOptions, run_demo

    folder = None
    if db is None:
        folder = Path(tempfile.mkdtemp(prefix="conveyor-demo-"))
        db = folder / "demo.db"
    options = DemoOptions(
        db.resolve(), workers, orders, payment_timeout, ui, ui_port, folder is not None and not keep
    )
    code = 130
    try:
        code = _run(run_demo(options, console))
    except KeyboardInterrupt:  # before or after the demo's own signal handlers
        pass
    finally:
        if folder is not None and keep:
            console.print(f"kept the demo's records in {folder}", highlight=False)
        elif folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    sys.exit(code)


@cli.command("demo-worker", hidden=True)
@STORE
@click.option("--payment-timeout", default=2.0)
def demo_worker(url: str, payment_timeout: float) -> None:
    from ._demo import run_demo_worker

    _run(run_demo_worker(url, payment_timeout), url)


def main() -> None:
    cli()
