"""Workflow: the running form of a built workflow, and its public API.

The work is done elsewhere: waiting in ``_waiting``, schedules in ``_scheduling``, run-state
control in ``_control``, the background processes by the ``Supervisor`` from ``_plan``'s
list. This class ties them to one definition and one set of adapters.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, tzinfo
from types import TracebackType
from typing import Generic, TypeVar

from ._client import WorkflowClient
from ._clock import Clock, SystemClock
from ._control import RunStateController, move_latest
from ._definition import Definition
from ._engine import Engine
from ._errors import (
    CallbackRejected,
    CallbackRejection,
    DecodeError,
    InvalidObject,
    InvalidSchedule,
    InvalidTransition,
    NotRunning,
    RecordNotFound,
    VersionConflict,
    WorkflowError,
)
from ._execution import PoisonRun
from ._logging import StdLogger
from ._markers import Skip
from ._plan import plan_processes
from ._protocols import (
    EventStreamer,
    Logger,
    RecordFilter,
    RecordStore,
    RoleScheduler,
    TimeoutStore,
)
from ._record import Record, Run
from ._registry import register
from ._runstate import RunState, State
from ._schedule import Schedule
from ._scheduling import run_schedule
from ._supervisor import ProcessContext, Supervisor
from ._types import ScheduleFilter, StepResult
from ._waiting import Waits
from ._watchdog import LoopWatchdog

__all__ = ["Workflow"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

_Callback = Callable[[Run[T, S], bytes], Awaitable[StepResult[S]]]


class _QuietLogger:
    """Drops debug lines unless the workflow is in debug mode."""

    def __init__(self, inner: Logger, debug: bool) -> None:
        self._inner = inner
        self._debug = debug

    def debug(self, msg: str, **meta: object) -> None:
        if self._debug:
            self._inner.debug(msg, **meta)

    def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
        self._inner.error(msg, exc, **meta)


class Workflow(Generic[T, S]):
    """A built workflow: trigger runs, wait for them, and run the background processes.

    Build one with ``Builder.build``. ``run()`` starts the processes (idempotent),
    ``stop()`` stops them and waits; ``async with workflow:`` does both.

    Runs come back as ``Run[T, S]`` (``lookup``, ``wait`` and the control actions
    ``pause``, ``resume``, ``cancel``, ``delete_data``). A control action whose run's stored
    object no longer decodes still makes its move, then raises ``DecodeError`` whose
    ``record`` is the record it wrote.
    """

    def __init__(
        self,
        definition: Definition[T, S],
        *,
        streamer: EventStreamer,
        record_store: RecordStore,
        role_scheduler: RoleScheduler,
        timeout_store: TimeoutStore | None,
        clock: Clock | None,
        logger: Logger | None,
    ) -> None:
        self._definition = definition
        engine: Engine[T, S] = Engine(
            definition,
            streamer=streamer,
            store=record_store,
            roles=role_scheduler,
            timeouts=timeout_store,
            clock=clock or SystemClock(),
            logger=_QuietLogger(logger or StdLogger(), definition.debug),
        )
        self._engine = engine
        self._waits: Waits[T, S] = Waits(
            engine.runs, streamer, engine.telemetry.logger, engine.telemetry.metrics
        )
        self._supervisor: Supervisor | None = None
        self._watchdog: LoopWatchdog | None = None
        self._running = False
        self._clients = 0
        self._lock = asyncio.Lock()
        self._callbacks: dict[int, list[_Callback[T, S]]] = {}
        for status, specs in definition.callbacks.items():
            for spec in specs:
                fn: _Callback[T, S] = engine.threads.wrap(spec.fn)
                self._callbacks.setdefault(status, []).append(fn)
        self._processes = plan_processes(engine, self)
        self._states: dict[str, State] = {p.name: State.UNKNOWN for p in self._processes}

    # ------------------------------------------------------------------ identity

    @property
    def name(self) -> str:
        """The workflow's name."""
        return self._definition.name

    @property
    def definition(self) -> Definition[T, S]:
        """What ``Builder.build`` decided (frozen)."""
        return self._definition

    @property
    def record_store(self) -> RecordStore:
        """The record store the workflow was built on."""
        return self._engine.store

    @property
    def timeout_store(self) -> TimeoutStore | None:
        """The timeout store the workflow was built on, if any."""
        return self._engine.timeouts

    @property
    def clock(self) -> Clock:
        """The clock of business time (record timestamps, timeouts, schedules)."""
        return self._engine.clock

    @property
    def status_type(self) -> type[S]:
        """The workflow's status enum."""
        return self._definition.status_type

    @property
    def object_type(self) -> type[T]:
        """The type of the runs' objects."""
        return self._definition.object_type

    # ------------------------------------------------------------------ processes

    def _on_state(self, name: str, state: State) -> None:
        self._states[name] = state

    async def run(self) -> None:
        """Start every background process (idempotent). Processes wait for their roles."""
        async with self._lock:
            if self._running:
                return
            engine = self._engine
            await self._register()
            supervisor = Supervisor(engine.roles, engine.telemetry.logger, on_state=self._on_state)
            self._supervisor = supervisor
            for process in self._processes:
                supervisor.start(process)
            self._running = True
            self._waits.hold()
            if self._definition.stall_threshold > 0:
                self._watchdog = LoopWatchdog(
                    self._definition.stall_threshold, self._stalled, supervisor.busy
                )
                self._watchdog.start()

    async def stop(self, *, grace: float | None = 30.0) -> bool:
        """Stop every process gracefully and wait until each has ended; returns whether
        all of them drained within ``grace`` seconds.

        Each process stops receiving and finishes the attempts it has started: a step
        that is running completes, its result is written and its event acknowledged, and
        then the process releases its role, so another instance takes over at once.
        Events received but not started stay unacknowledged (the next holder gets them).
        At ``grace`` (``None``: no limit) what still runs is cancelled: async steps are
        interrupted; a step in a thread cannot be, so stop waits for it (its process
        keeps its role until then) and returns ``False``. Safe to call more than once,
        or before run().
        """
        async with self._lock:
            supervisor = self._supervisor
            self._running = False
            if supervisor is None:
                return True
            self._supervisor = None
            drained = await supervisor.stop(grace)
            self._engine.threads.shutdown()
            await self._waits.release()
            watchdog, self._watchdog = self._watchdog, None
            if watchdog is not None:
                await watchdog.stop()
            return drained

    async def _register(self) -> None:
        """Tell the store this workflow's definition (when it keeps them), so tools with
        only the store's URL can show it; a store that cannot take it now is logged."""
        engine = self._engine
        try:
            await register(self._definition, engine.store, engine.clock)
        except WorkflowError as exc:
            engine.telemetry.logger.error(
                "could not register the workflow's definition", exc, workflow=self.name
            )

    def _stalled(self, seconds: float, where: str, over: bool) -> None:
        """The watchdog's report (from its thread): log it, count it."""
        logger = self._engine.telemetry.logger
        if over:
            logger.error(
                f"the event loop was blocked for {seconds:.2f}s; a blocking call in an "
                "async function stops every process of this worker",
                None,
                workflow=self.name,
                blocked_in=where,
            )
            return
        self._engine.telemetry.metrics.stalled()
        logger.error(
            f"the event loop has not turned for {seconds:.2f}s: blocked in {where}",
            None,
            workflow=self.name,
            blocked_in=where,
        )

    async def __aenter__(self) -> Workflow[T, S]:
        await self.run()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def states(self) -> dict[str, State]:
        """Each process's state by process name (Unknown before run, Shutdown after stop)."""
        return dict(self._states)

    def process_names(self) -> list[str]:
        """The names of the workflow's background processes, in a stable order."""
        return [p.name for p in self._processes]

    def _contexts(self) -> list[ProcessContext]:
        return [] if self._supervisor is None else list(self._supervisor.contexts.values())

    # ------------------------------------------------------------------ runs

    @asynccontextmanager
    async def client(self) -> AsyncIterator[WorkflowClient[T, S]]:
        """Use the workflow from an API process: ``async with wf.client() as client:``.

        Inside the block, ``client`` (and ``wf`` itself) can ``trigger``, ``wait``,
        ``callback``, ``lookup`` and control runs, while no background process runs here:
        no role is taken, and no step, timeout, hook or connector executes (workers do
        that, with ``run()`` or ``conveyor worker``). ``schedule`` raises ``NotRunning``
        in a client. Clients may nest and overlap ``run()``.
        """
        async with self._lock:
            if self._clients == 0 and not self._running:
                await self._register()
            self._clients += 1
            self._waits.hold()
        try:
            yield WorkflowClient(self)
        finally:
            async with self._lock:
                self._clients -= 1
                await self._waits.release()

    def _require_api(self, what: str) -> None:
        if not self._running and self._clients == 0:
            raise NotRunning(
                f"cannot {what}: workflow {self.name!r} is not running "
                "(use run() in a worker, or client() in an API process)"
            )

    def _require_running(self, what: str) -> Supervisor:
        supervisor = self._supervisor
        if not self._running or supervisor is None:
            where = " (a client runs no background process)" if self._clients else ""
            raise NotRunning(f"cannot {what}: workflow {self.name!r} is not running{where}")
        return supervisor

    def _status_in_graph(self, status: int, what: str) -> int:
        if (
            isinstance(status, bool)
            or not isinstance(status, int)
            or status not in self._definition.graph
        ):
            raise InvalidTransition(
                f"cannot {what}: status {status!r} is not part of workflow {self.name!r}"
            )
        return int(status)

    async def trigger(
        self, foreign_id: str, *, initial: T | None = None, start_at: S | None = None
    ) -> str:
        """Start a run for ``foreign_id`` and return its run ID.

        Starts at ``start_at`` (default: the first status with no incoming edge) with
        ``initial`` as the object (default: the type's zero value). Raises ``NotRunning``
        outside ``run()`` and ``client()``, ``WorkflowInProgress`` if the foreign ID has an
        active run.
        """
        self._require_api("trigger")
        engine = self._engine
        if start_at is None:
            status = self._definition.graph.starting()[0]
        else:
            status = self._status_in_graph(start_at, "trigger")
        codec = engine.runs.codec
        kind = self._definition.object_type
        if initial is not None and isinstance(kind, type) and not isinstance(initial, kind):
            raise InvalidObject(
                f"cannot trigger: initial must be a {kind.__name__} (the type of workflow "
                f"{self.name!r}), not {type(initial).__name__}"
            )
        obj = codec.zero() if initial is None else initial
        write = engine.writer.new_run(self.name, str(foreign_id), status, codec.encode(obj))
        await engine.writer.write(write)
        return write.record.run_id

    async def lookup(self, run_id: str) -> Run[T, S]:
        """The current state of a run, with its latest failed attempt at this version as
        ``failure`` (when the store records failures). Raises ``RecordNotFound``, or
        ``DecodeError`` if its object no longer decodes."""
        runs = self._engine.runs
        record = await self._engine.store.lookup(run_id)
        run = runs.view(record)
        failures = runs.attempts.failures
        if failures is not None:
            found = await failures.failures(run_id, record.meta.version)
            run.failure = found[-1] if found else None
        return run

    async def wait(
        self,
        foreign_id: str,
        run_id: str,
        status: S,
        *,
        poll_interval: float | None = None,
    ) -> Run[T, S]:
        """Return the run once it has reached ``status`` (also if it did before the call).

        For a terminal status: once the run completed there. Raises ``RunEnded`` if the run
        finishes another way first; keeps waiting while the run is paused. Raises
        ``RecordNotFound`` at once if this workflow has no run ``run_id`` for
        ``foreign_id``. Bound it with ``asyncio.timeout``.

        The waits of one process share one read of each topic (when the streamer offers
        ``conveyor.abc.TailsTopics``). ``poll_interval`` matters only for streamers
        without it: it bounds how long each wait's own receivers go between looks.
        """
        target = self._status_in_graph(status, "wait")
        return await self._waits.wait(foreign_id, run_id, target, poll_interval)

    async def callback(self, foreign_id: str, status: S, payload: bytes = b"") -> Run[T, S]:
        """Hand ``payload`` to the callbacks registered for ``status``; return the run as
        they left it.

        Targets the latest run of ``foreign_id``. Raises ``RecordNotFound`` if it has
        none; ``InvalidTransition`` at once if ``status`` has no callback (as ``trigger``
        and ``wait`` do for a status the workflow lacks); ``CallbackRejected`` if no
        callback applied (``reason``: the run is at another status, paused, finished,
        or ``moved``: the callback ran but a step or timeout moved the run first). With
        several callbacks for the status, each runs in turn on the run as the previous
        one left it. Errors of the callback function are raised to the caller; an
        invalid result raises ``InvalidTransition``.
        """
        target = self._status_in_graph(status, "callback")
        fns = self._callbacks.get(target)
        if not fns:
            raise InvalidTransition(
                f"cannot callback: status {self._definition.status_name(target)} of "
                f"workflow {self.name!r} has no callback"
            )
        engine = self._engine
        runs = engine.runs
        applied: Run[T, S] | None = None
        for fn in fns:
            record = await engine.store.latest(self.name, str(foreign_id))
            rejection = self._rejection(record, target)
            if rejection is not None:
                if applied is not None:
                    break  # an earlier callback moved it on
                raise rejection
            try:
                run = runs.to_run(record)
            except PoisonRun as exc:
                raise InvalidTransition(str(exc)) from exc
            with engine.telemetry.tracing.span(
                f"conveyor callback {self._definition.status_name(target)}",
                run_id=record.run_id,
                workflow=self.name,
            ):
                result = await fn(run, bytes(payload))
                try:
                    write = runs.result_write(record, run, result)
                except PoisonRun as exc:
                    raise InvalidTransition(str(exc)) from exc
                if isinstance(write, Skip):
                    applied = runs.view(record)
                    continue
                try:
                    await engine.writer.write(write)
                except VersionConflict as exc:
                    if applied is not None:
                        break
                    raise await self._lost_race(record, target) from exc
                applied = runs.view(write.record)
        assert applied is not None  # every path either applied or raised
        return applied

    def _rejection(self, record: Record, target: int) -> CallbackRejected | None:
        """Why a callback of ``target`` does not apply to ``record`` (``None``: it does)."""
        state = record.run_state
        name = self._definition.status_name
        reason: CallbackRejection
        if state.finished():
            reason, why = "finished", f"it has finished ({state})"
        elif state.stopped():
            reason, why = "stopped", f"it is {state}"
        elif record.status != target:
            reason, why = "not_at_status", f"it is at {name(record.status)}"
        else:
            return None
        return CallbackRejected(
            record,
            reason,
            f"callback for {name(target)} rejected: run {record.run_id} of foreign ID "
            f"{record.foreign_id!r} is not waiting for it ({why})",
        )

    async def _lost_race(self, record: Record, target: int) -> CallbackRejected:
        try:
            current = await self._engine.store.lookup(record.run_id)
        except RecordNotFound:
            current = record
        name = self._definition.status_name
        return CallbackRejected(
            current,
            "moved",
            f"callback for {name(target)} rejected: run {record.run_id} of foreign ID "
            f"{record.foreign_id!r} moved on (to {name(current.status)}, {current.run_state})"
            " while the callback ran; the callback's result was not written",
        )

    async def schedule(
        self,
        foreign_id: str,
        spec: str,
        *,
        initial: T | None = None,
        filter: ScheduleFilter | None = None,
        tz: tzinfo = UTC,
        err_backoff: float = 1.0,
    ) -> None:
        """Trigger a run for ``foreign_id`` at every slot of the cron ``spec``; blocks.

        Cancel the calling task to end it (the cancellation propagates); when the workflow
        stops, it returns normally. ``spec`` is standard cron (ranges, lists, steps), a
        descriptor (``@hourly``, ``@daily``, ``@monthly``, ...) or ``@every <duration>``
        (``@every 90s``). Slots are computed from the creation time of the foreign ID's
        latest run (so a slot missed while down fires at start-up), then from the time each
        slot fired. ``filter(slot)`` returning false skips a slot. A slot whose previous run
        is still in progress is skipped. The schedule runs under its own role, so with
        several instances only one fires it.
        """
        supervisor = self._require_running("schedule")
        try:
            parsed = Schedule(spec, tz)
        except ValueError as exc:
            raise InvalidSchedule(f"invalid schedule: {exc}") from exc
        engine = self._engine
        check: Callable[[datetime], Awaitable[bool]] | None = (
            engine.threads.wrap(filter) if filter is not None else None
        )

        async def trigger() -> str:
            return await self.trigger(foreign_id, initial=initial)

        await run_schedule(
            supervisor,
            workflow_name=self.name,
            foreign_id=foreign_id,
            spec=spec,
            schedule=parsed,
            store=engine.store,
            clock=engine.clock,
            metrics=engine.telemetry.metrics,
            trigger=trigger,
            check=check,
            err_backoff=err_backoff,
        )

    # ------------------------------------------------------------------ run states

    def controller(self, record: Record) -> RunStateController:
        """A ``RunStateController`` for ``record`` (moves compare-and-set on its version)."""
        return RunStateController(self._engine.writer, record, errors=self._engine.runs.errors)

    async def _move(self, run_id: str, to: RunState, reason: str) -> Run[T, S]:
        engine = self._engine
        record = await move_latest(engine.writer, run_id, to, reason, errors=engine.runs.errors)
        try:
            return engine.runs.view(record)
        except DecodeError as exc:
            raise DecodeError(f"the run moved to {to}, but {exc}", record) from exc

    async def pause(self, run_id: str, reason: str = "") -> Run[T, S]:
        """Pause a run (Initiated or Running) and return it. Raises ``InvalidTransition``
        otherwise (``cannot pause a run that is Paused``), ``RecordNotFound``, or after
        repeated conflicts with other writers ``VersionConflict``."""
        return await self._move(run_id, RunState.PAUSED, reason)

    async def resume(self, run_id: str) -> Run[T, S]:
        """Resume a paused run (its current step runs again) and return it."""
        return await self._move(run_id, RunState.RUNNING, "")

    async def cancel(self, run_id: str, reason: str = "") -> Run[T, S]:
        """Cancel a run (Running or Paused; pause an Initiated run first) and return it."""
        return await self._move(run_id, RunState.CANCELLED, reason)

    async def delete_data(self, run_id: str, reason: str = "") -> Run[T, S]:
        """Ask for a finished run's object to be scrubbed (Completed, Cancelled, DataDeleted)
        and return it (at RequestedDataDeleted: the delete consumer scrubs it next)."""
        return await self._move(run_id, RunState.REQUESTED_DATA_DELETED, reason)

    async def list_runs(self, foreign_id: str) -> Sequence[Record]:
        """Every run of ``foreign_id`` in this workflow, oldest first."""
        return await self._engine.store.list(
            self.name, limit=10_000, filter=RecordFilter(foreign_ids=(foreign_id,))
        )
