"""``conveyor ui``: the web UI over a store until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import click
from rich.console import Console

from .._connect import Backend
from .._urls import redact

__all__ = ["run_ui", "announce"]


def announce(console: Console, url: str, token: str, generated: bool, local: bool) -> None:
    """Say where the UI is, and (once) the token it made."""
    console.print(f"conveyor UI on [bold]{url}[/bold]", soft_wrap=True)
    console.print(
        f"JSON API under {url}api (its OpenAPI document: {url}api/openapi.json)", soft_wrap=True
    )
    if generated:
        console.print(f"token for actions (shown once): [bold]{token}[/bold]", soft_wrap=True)
    if not local:
        console.print("bound beyond loopback: reading needs the token too")


async def run_ui(
    url: str,
    host: str,
    port: int,
    token: str | None,
    allowed_hosts: Sequence[str],
    console: Console,
    open_store: Callable[[str], AbstractAsyncContextManager[Backend]],
) -> int:
    try:
        from ..web._serve import UIServer
    except ImportError as exc:  # the extra is not installed
        raise click.ClickException(
            f"the UI needs conveyor's web extra: pip install 'conveyor[web]' ({exc})"
        ) from None
    async with open_store(url) as backend:
        try:
            server = UIServer(
                backend.record_store,
                host=host,
                port=port,
                token=token,
                allowed_hosts=allowed_hosts,
                store_url=url,
            )
        except OSError as exc:
            raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror}") from None
        await server.start()
        announce(console, server.url, server.token, server.generated_token, server.local)
        console.print(f"store: {redact(url)}; Ctrl-C stops")
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            waiter = asyncio.ensure_future(stopping.wait())
            served = asyncio.ensure_future(server.wait())
            await asyncio.wait({waiter, served}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await server.stop()
    return 0
