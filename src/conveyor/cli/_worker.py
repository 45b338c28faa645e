"""``conveyor worker``: run the background processes of workflows until a signal drains them.

On SIGTERM or SIGINT every process stops receiving, finishes the attempts it has started
(their results written, their events acknowledged) and releases its role, so another
worker takes over at once. The command exits 0 once drained; if ``--grace`` seconds pass
first it exits 1, leaving roles still busy in threads to expire; a second signal exits at
once with 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, make_wsgi_app

from .._builder import Builder
from .._connect import Backend, connect
from .._upgrade import stranded_at_start
from .._urls import redact
from .._workflow import Workflow

__all__ = ["WorkerError", "load_targets", "run_worker"]

log = logging.getLogger("conveyor.worker")

Factory = Callable[[Backend], Workflow[Any, Any]]


class WorkerError(Exception):
    """A target that cannot be loaded or built (reported without a traceback)."""


def load_targets(targets: Iterable[str]) -> list[tuple[str, Factory]]:
    """Resolve each ``module:attr`` to a function that builds its workflow on a backend.

    ``attr`` is a ``Builder`` (built on the backend's four adapters) or a factory
    ``(backend) -> Workflow`` (so ``build()``'s options stay the application's).
    """
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    loaded: list[tuple[str, Factory]] = []
    for target in targets:
        module_name, _, attr = target.partition(":")
        if not module_name or not attr:
            raise WorkerError(f"expected module:attribute, got {target!r}")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise WorkerError(f"cannot import {module_name!r}: {exc}") from None
        obj = getattr(module, attr, None)
        if obj is None:
            raise WorkerError(f"{module_name!r} has no attribute {attr!r}")
        loaded.append((target, _factory(target, obj)))
    return loaded


def _factory(target: str, obj: object) -> Factory:
    if isinstance(obj, Builder):
        builder: Builder[Any, Any] = obj

        def build(backend: Backend) -> Workflow[Any, Any]:
            return builder.build(
                backend.streamer,
                backend.record_store,
                backend.role_scheduler,
                timeout_store=backend.timeout_store,
            )

        return build
    if callable(obj) and not isinstance(obj, Workflow):
        factory: Callable[[Backend], object] = obj

        def call(backend: Backend) -> Workflow[Any, Any]:
            wf = factory(backend)
            if not isinstance(wf, Workflow):
                raise WorkerError(
                    f"{target} returned {type(wf).__name__}, not a Workflow: a factory "
                    "takes the backend and returns builder.build(...) on its adapters"
                )
            return wf

        return call
    raise WorkerError(
        f"{target} is a {type(obj).__name__}: name a Builder, or a factory (backend) -> Workflow"
    )


async def _warn_of_stranded_runs(wf: Workflow[Any, Any]) -> None:
    """Log a warning for runs in flight at statuses ``wf`` never moves runs from (they
    would wait there for ever, silently). A failed look is logged, never fatal."""
    try:
        stranded = await stranded_at_start(wf.definition, wf.record_store)
    except Exception as exc:  # the worker starts anyway: this is advice, not a gate
        log.warning("could not look for stranded runs of %s: %s", wf.name, exc)
        return
    for s in stranded:
        log.warning(
            "%s: %d run(s) in flight wait at %s (%d), which this worker never moves runs "
            "from (%s), e.g. %s; see `conveyor check`",
            wf.name,
            s.count,
            s.name,
            s.status,
            s.reason,
            ", ".join(s.sample_run_ids),
        )


class _Health:
    """What the metrics endpoint reports as readiness (read from its thread)."""

    def __init__(self) -> None:
        self.ready = False


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged (scrapes every few seconds would drown the log)."""


def _serve_metrics(host: str, port: int, health: _Health) -> WSGIServer:
    """Serve ``/metrics`` (Prometheus) and ``/ready`` (200 while running, else 503)."""
    metrics = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/ready":
            ok = health.ready
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
            return [b"ready\n" if ok else b"not ready\n"]
        result: Iterable[bytes] = metrics(environ, start_response)
        return result

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="conveyor-metrics", daemon=True).start()
    return server


async def run_worker(
    targets: list[str],
    url: str,
    *,
    grace: float,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    parts: Mapping[str, str] | None = None,
) -> int:
    """Run the targets' workflows on ``url`` (and the ``parts`` elsewhere: ``events``,
    ``roles``, ``timeouts`` URLs) until SIGTERM/SIGINT; return the exit code."""
    factories = load_targets(targets)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) > 1:
            log.warning("second signal (%s): exiting at once", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(128 + signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    health = _Health()
    server = None if metrics_port is None else _serve_metrics(metrics_host, metrics_port, health)
    try:
        async with connect(url, **(parts or {})) as backend:
            workflows = [factory(backend) for _, factory in factories]
            for wf in workflows:
                await _warn_of_stranded_runs(wf)
                await wf.run()
            health.ready = True
            log.info(
                "worker started: workflows %s on %s, %d processes, pid %d%s",
                ", ".join(wf.name for wf in workflows),
                redact(url),
                sum(len(wf.process_names()) for wf in workflows),
                os.getpid(),
                "" if server is None else f", metrics on {metrics_host}:{server.server_port}",
            )
            await stop.wait()
            health.ready = False
            name = signal.Signals(received[0]).name
            log.info("%s: draining (grace %gs)", name, grace)
            started = time.monotonic()
            stopping = asyncio.ensure_future(
                asyncio.gather(*(wf.stop(grace=grace) for wf in workflows))
            )
            # stop() itself cancels async work at the grace; the margin covers that.
            done, _ = await asyncio.wait({stopping}, timeout=grace + 1.0)
            if not done:
                log.error(
                    "grace of %gs is over: steps still running in threads; exiting and "
                    "leaving their roles to expire",
                    grace,
                )
                logging.shutdown()
                os._exit(1)
            drained = all(stopping.result())
            took = time.monotonic() - started
            if drained:
                log.info("drained in %.2fs: every started attempt is written; stopped", took)
            else:
                log.error("grace of %gs is over: unfinished attempts were cancelled", grace)
            return 0 if drained else 1
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if server is not None:
            server.shutdown()
            server.server_close()
