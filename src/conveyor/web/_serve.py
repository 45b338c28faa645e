"""Serving the UI: ``UIServer`` (uvicorn on a socket of our own) for ``conveyor ui`` and
``conveyor demo``.

The server never installs signal handlers: its owner decides what a signal means (the
demo stops its workers first; ``conveyor ui`` stops serving) and calls ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator, Sequence

import uvicorn

from .._protocols import RecordStore
from ._app import LOCAL_HOSTS, create_app
from ._security import is_loopback, new_token

__all__ = ["UIServer"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the owner handles signals


class UIServer:
    """The UI and API of ``store`` on ``host:port`` (port 0: any free port).

    Without ``token`` one is made (``token`` tells it, to print once). Bound to anything
    but loopback, reads need the token too, and ``allowed_hosts`` (default: any) are the
    ``Host`` values served; on loopback only local names are.
    """

    def __init__(
        self,
        store: RecordStore,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        allowed_hosts: Sequence[str] = (),
        store_url: str = "",
        title: str = "conveyor",
    ) -> None:
        self.host = host
        self.token = token or new_token()
        self.generated_token = token is None
        self.local = is_loopback(host)
        hosts = list(allowed_hosts) or (list(LOCAL_HOSTS) if self.local else ["*"])
        if self.local and host not in hosts:
            hosts.append(host)
        self.app = create_app(
            store,
            token=self.token,
            reads_need_token=not self.local,
            allowed_hosts=hosts,
            store_url=store_url,
            title=title,
        )
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that name TCP, and
        # without it each kept-alive response's body waits ~40 ms for a delayed ACK
        # (uvicorn writes the headers and the body separately; benchmarks/ui.py).
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host.strip("[]"), port))  # OSError: address in use, say
        except BaseException:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        shown = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"

    async def start(self) -> None:
        """Serve in a task of this loop; return once the server accepts connections."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the UI server stopped before it started")
            await asyncio.sleep(0.01)  # uvicorn offers no start event: poll its flag

    async def wait(self) -> None:
        """Until the server stops."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop serving (open requests finish); idempotent."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._socket.close()
