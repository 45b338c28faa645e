"""Runs every background process under its role, and owns every task it starts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine, Sized
from dataclasses import dataclass, field
from typing import Any

from ._capabilities import ReportsPending
from ._metrics import ProcessMetrics
from ._protocols import EventReceiver, Lease, Logger, RoleScheduler
from ._runstate import State

__all__ = ["Process", "ProcessContext", "Supervisor", "backoff_delay"]

_MAX_BACKOFF = 60.0


def backoff_delay(base: float, attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [base/2, base * 2**(attempt-1)]."""
    if base <= 0:
        return 0.0
    # The exponent is capped: 2.0**1024 overflows a float (a run failing for weeks).
    ceiling = min(_MAX_BACKOFF, base * 2.0 ** min(max(0, attempt - 1), 64))
    return random.uniform(min(base / 2, ceiling), ceiling)


@dataclass(slots=True)
class ProcessContext:
    """What a process body gets: its names and lease, and hooks to report progress.

    A body sets ``busy`` while it works on something it has started (events received,
    a step running, a write under way) and checks ``draining`` between pieces of work:
    once it is set, the body returns instead of starting more. A graceful stop lets a
    busy body finish and cancels an idle one.
    """

    name: str
    role: str
    lease: Lease
    metrics: ProcessMetrics | None = None
    _busy: bool = False
    clock_wait: bool = False
    """True while the process waits on business time: idle, however much is queued behind."""
    receivers: list[EventReceiver] = field(default_factory=list)
    opening: bool = False
    """True while the body opens its receiver: not idle (its events are not counted yet),
    though not busy either (a stop need not wait for it)."""
    failures: int = 0
    draining: bool = False
    """Set by a graceful stop: finish what was started, start nothing new, return."""
    retries: Sized = ()
    """Runs the process will attempt again (not idle while there are any)."""
    _done_with_work: asyncio.Future[None] | None = None

    @property
    def busy(self) -> bool:
        """True while the process holds work it has started and not finished."""
        return self._busy

    @busy.setter
    def busy(self, value: bool) -> None:
        self._busy = value
        waiter = self._done_with_work
        if not value and waiter is not None:
            self._done_with_work = None
            if not waiter.done():
                waiter.set_result(None)

    def done_with_work(self) -> asyncio.Future[None]:
        """A future that completes the next time ``busy`` is cleared."""
        waiter = self._done_with_work
        if waiter is None:
            waiter = self._done_with_work = asyncio.get_running_loop().create_future()
        return waiter

    def progress(self) -> None:
        """The process got work done: the next failure backs off from the start again."""
        self.failures = 0

    def watch(self, receiver: EventReceiver) -> None:
        """Let idleness checks see how far behind ``receiver`` is."""
        self.receivers.clear()
        self.receivers.append(receiver)

    def idle(self) -> bool:
        """No work in hand, and every receiver reports that it is caught up.

        A receiver that cannot tell (it lacks ``ReportsPending``) is never idle.
        """
        if self.busy or self.opening or len(self.retries):
            return False
        if self.clock_wait:
            return True
        return all(isinstance(rx, ReportsPending) and rx.pending() == 0 for rx in self.receivers)


Body = Callable[[ProcessContext], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class Process:
    """A background loop: it runs only while its role is held, restarted after errors."""

    name: str
    role: str
    body: Body
    err_backoff: float
    metrics: ProcessMetrics | None = None


class Supervisor:
    """Starts processes as tasks it keeps; a crash in one never cancels the others.

    ``stop()`` drains: each process finishes the work it has started (its results
    written, its events acknowledged), starts nothing new and releases its role; what is
    still running at the grace period's end is cancelled. A lost role drains its process
    the same way (a role handed over to another member stays held until then), and the
    process then waits to hold the role again.
    """

    def __init__(
        self,
        roles: RoleScheduler,
        logger: Logger,
        on_state: Callable[[str, State], None] | None = None,
    ) -> None:
        self._roles = roles
        self._logger = logger
        self._on_state = on_state
        self._metrics: dict[str, ProcessMetrics] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.states: dict[str, State] = {}
        self.contexts: dict[str, ProcessContext] = {}
        self._draining = asyncio.Event()

    def busy(self) -> bool:
        """Whether some process holds work in hand (safe to call from another thread: it
        may raise ``RuntimeError`` if the loop changes the processes meanwhile)."""
        return any(ctx.busy for ctx in list(self.contexts.values()))

    def start(self, process: Process) -> asyncio.Task[None]:
        if process.name in self._tasks:
            raise RuntimeError(f"process {process.name!r} already started")
        if process.metrics is not None:
            self._metrics[process.name] = process.metrics
        self._set_state(process.name, State.IDLE)
        task = asyncio.get_running_loop().create_task(
            self._supervise(process), name=f"conveyor:{process.role}"
        )
        self._tasks[process.name] = task
        return task

    async def end(self, name: str) -> None:
        """Cancel one process and wait for it (used when a schedule's caller stops it)."""
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
            # A task cancelled before it ever ran skipped _supervise's finally.
            self._set_state(name, State.SHUTDOWN)

    def _set_state(self, name: str, state: State) -> None:
        self.states[name] = state
        metrics = self._metrics.get(name)
        if metrics is not None:
            metrics.state.set(int(state))
        if self._on_state is not None:
            self._on_state(name, state)

    async def _supervise(self, process: Process) -> None:
        attempt = 0
        try:
            while not self._draining.is_set():
                self._set_state(process.name, State.IDLE)
                try:
                    async with self._roles.hold(process.role) as lease:
                        attempt = 0
                        self._logger.debug("role acquired", role=process.role)
                        self._set_state(process.name, State.RUNNING)
                        await self._run_under_lease(process, lease)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # role acquisition failed: back off too
                    attempt += 1
                    self._logger.error("role error", exc, role=process.role, process=process.name)
                    await asyncio.sleep(backoff_delay(process.err_backoff, attempt))
        finally:
            self.contexts.pop(process.name, None)
            self._set_state(process.name, State.SHUTDOWN)

    async def _run_under_lease(self, process: Process, lease: Lease) -> None:
        ctx = ProcessContext(process.name, process.role, lease, process.metrics)
        self.contexts[process.name] = ctx
        loop = asyncio.get_running_loop()
        lost = loop.create_task(lease.wait_lost())
        drain = loop.create_task(self._draining.wait())
        try:
            while not lease.lost() and not drain.done():
                child = loop.create_task(process.body(ctx), name=f"conveyor:{process.name}")
                try:
                    await asyncio.wait({child, lost, drain}, return_when=asyncio.FIRST_COMPLETED)
                    if not child.done():
                        # Stopping, or the role was lost (handed over to another member,
                        # or the lease lapsed): finish the work in hand, so a step that
                        # started has its result written (compare-and-set decides whether
                        # it still applies) instead of running again elsewhere.
                        await self._finish_work(ctx, child)
                finally:
                    if not child.done():
                        child.cancel()
                        # Wait for the child to really end (threads cannot be cancelled).
                        await asyncio.wait({child})
                    if not child.cancelled():
                        child.exception()  # retrieved even when we are cancelled (stop)
                if child.cancelled():
                    continue
                exc = child.exception()
                if exc is None:
                    continue
                ctx.failures += 1
                ctx.busy = True  # failed work waits to be retried: not idle
                self._logger.error("process error", exc, role=process.role, process=process.name)
                if process.metrics is not None:
                    process.metrics.errors.inc()
                delay = backoff_delay(process.err_backoff, ctx.failures)
                await asyncio.wait(
                    {lost, drain}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
                )
                ctx.busy = False
        finally:
            lost.cancel()
            drain.cancel()
            self.contexts.pop(process.name, None)
            if lease.lost():
                self._logger.debug("role lost", role=process.role)

    @staticmethod
    async def _finish_work(ctx: ProcessContext, child: asyncio.Task[None]) -> None:
        """Let ``child`` finish the work it has started, then end it: a busy body returns
        once its batch is written (it checks ``draining``); an idle one is cancelled."""
        ctx.draining = True
        while not child.done():
            if not ctx.busy:
                child.cancel()  # between pieces of work: nothing started is lost
                # Let it close what it holds (a broker's receiver hands its events back)
                # rather than cancelling that too; a stop's grace still bounds the wait.
                await asyncio.wait({child})
                return
            await asyncio.wait({child, ctx.done_with_work()}, return_when=asyncio.FIRST_COMPLETED)

    async def stop(self, grace: float | None = None) -> bool:
        """Drain every process and wait until each has ended; returns whether all drained.

        Each process finishes the work it has started (a running step completes and its
        result is written and acknowledged; events received but not started stay
        unacknowledged, for the next holder of the role), then releases its role so
        another instance takes over at once. Processes waiting for a role end at once.
        After ``grace`` seconds (``None``: no limit), what still runs is cancelled: an
        async step is interrupted (its run is retried by the next holder); a step in a
        thread cannot be, so its process keeps its role until the thread ends.
        """
        self._draining.set()
        for ctx in self.contexts.values():
            ctx.draining = True
        for name, task in self._tasks.items():
            if name not in self.contexts:
                task.cancel()  # waiting for a role or backing off: nothing in hand
        tasks = list(self._tasks.values())
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        # A task cancelled before it ever ran skipped _supervise's finally.
        for name in self._tasks:
            if self.states.get(name) is not State.SHUTDOWN:
                self._set_state(name, State.SHUTDOWN)
        self._tasks.clear()
        return not pending
