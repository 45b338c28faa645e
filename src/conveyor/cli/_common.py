"""What the ``conveyor`` commands share: the ``--store`` option, the console, and how a
conveyor error becomes one line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console

from .._connect import Backend, connect, open_unchecked
from .._errors import RecordNotFound, WorkflowError
from .._urls import redact, scrub

__all__ = [
    "STORE",
    "STORE_HELP",
    "console",
    "existing",
    "existing_unchecked",
    "parts",
    "run",
]

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

console = Console()

STORE_HELP = (
    "The store's URL (or $CONVEYOR_STORE): sqlite:///relative/path.db, "
    "sqlite:////absolute/path.db, or postgresql://user:password@host:5432/dbname."
)
_STORE = click.option(
    "--store",
    "url",
    required=True,
    envvar="CONVEYOR_STORE",
    metavar="URL",
    help=STORE_HELP,
)
_PARTS_KEY = "conveyor.parts"


def _part_option(part: str, what: str) -> Callable[[F], F]:
    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.meta.setdefault(_PARTS_KEY, {})[part] = value

    return click.option(
        f"--{part}",
        envvar=f"CONVEYOR_{part.upper()}",
        metavar="URL",
        expose_value=False,
        callback=remember,
        help=f"Take the {what} from this URL instead of --store's (or $CONVEYOR_{part.upper()}).",
    )


def STORE(command: F) -> F:
    """``--store URL`` and the parts a mixed deployment takes elsewhere: ``--events URL``,
    ``--roles URL``, ``--timeouts URL`` (read back with ``parts()``)."""
    for part, what in (
        ("timeouts", "timeout store"),
        ("roles", "role scheduler"),
        ("events", "event streamer (a broker: redis://, nats://)"),
    ):
        command = _part_option(part, what)(command)
    return _STORE(command)


def parts() -> dict[str, str]:
    """The ``--events``/``--roles``/``--timeouts`` URLs given to the running command."""
    ctx = click.get_current_context(silent=True)
    return dict(ctx.meta.get(_PARTS_KEY, {})) if ctx is not None else {}


def run(coro: Awaitable[R], url: str = "") -> R:
    """Run ``coro``; a conveyor error becomes one line (``url``'s password masked in it)."""
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except RecordNotFound as exc:
        raise click.ClickException(scrub(f"run not found: {exc}", url)) from None
    except WorkflowError as exc:
        raise click.ClickException(scrub(str(exc), url)) from None


@asynccontextmanager
async def existing(url: str) -> AsyncIterator[Backend]:
    """Open a backend that must already exist (never create an empty SQLite file), with
    the parts given as ``--events``, ``--roles``, ``--timeouts``."""
    _must_exist(url)
    async with connect(url, **parts()) as backend:
        yield backend


@asynccontextmanager
async def existing_unchecked(url: str) -> AsyncIterator[Backend]:
    """``existing``, without the other parts and the check of where events go."""
    _must_exist(url)
    async with open_unchecked(url) as backend:
        yield backend


def _must_exist(url: str) -> None:
    if urlsplit(url).scheme == "sqlite":
        path = Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None
        if path is None or not path.exists():
            raise click.ClickException(f"no such database file: {path or redact(url)}")
