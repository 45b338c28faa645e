"""What the ``conveyor`` commands share: the ``--store`` option, the console, and how a
conveyor error becomes one line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import click
from rich.console import Console

from .._connect import Backend, connect
from .._errors import RecordNotFound, WorkflowError
from .._urls import redact, scrub

__all__ = ["STORE", "STORE_HELP", "console", "existing", "run"]

R = TypeVar("R")

console = Console()

STORE_HELP = (
    "The store's URL (or $CONVEYOR_STORE): sqlite:///relative/path.db, "
    "sqlite:////absolute/path.db, or postgresql://user:password@host:5432/dbname."
)
STORE = click.option(
    "--store",
    "url",
    required=True,
    envvar="CONVEYOR_STORE",
    metavar="URL",
    help=STORE_HELP,
)


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
    """Open a backend that must already exist (never create an empty SQLite file)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None
        if path is None or not path.exists():
            raise click.ClickException(f"no such database file: {path or redact(url)}")
    async with connect(url) as backend:
        yield backend
