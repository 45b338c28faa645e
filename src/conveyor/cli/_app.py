"""The ``conveyor`` command line."""

from __future__ import annotations

import importlib
import logging
import sys
import tempfile
from pathlib import Path

import click

from .._builder import Builder
from .._connect import migrate
from .._migration import MigrationReport
from .._urls import redact
from .._workflow import Workflow
from ..diagram import Direction
from ._common import STORE, console
from ._common import existing as _existing
from ._common import run as _run
from ._runs import runs

__all__ = ["cli", "main"]

_LEVELS = ["debug", "info", "warning", "error"]


@click.group()
@click.version_option(package_name="conveyor")
def cli() -> None:
    """conveyor: durable, event-driven workflows on your own databases."""


cli.add_command(runs)


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
    """Create or upgrade the schema of a SQL backend, and say what was done."""
    report = _run(migrate(url), url)
    # one line of plain text: a URL (an IPv6 host, a path) is not markup
    summary = migration_summary(report, redact(url))
    console.print(summary, markup=False, highlight=False, soft_wrap=True)


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
