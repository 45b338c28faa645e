"""Workflow: the running form of a built workflow, and its public API."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, tzinfo
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._clock import Clock, SystemClock
from ._controller import RunStateController, move_with_retry
from ._engine import Engine, PoisonRun, WorkflowConfig
from ._errors import (
    InvalidSchedule,
    InvalidTransition,
    NotRunning,
    RecordNotFound,
    RunEnded,
    WorkflowInProgress,
)
from ._event import Event, Header, make_role, run_state_change_topic, topic
from ._logging import StdLogger
from ._plan import plan_processes
from ._protocols import EventReceiver, EventStreamer, Logger, RecordStore, RoleScheduler
from ._record import Record, Run
from ._runstate import RunState, State
from ._schedule import Schedule
from ._supervisor import Process, ProcessContext, Supervisor

__all__ = ["Workflow", "WorkflowConfig"]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)


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
    """

    def __init__(
        self,
        config: WorkflowConfig[T, S],
        *,
        streamer: EventStreamer,
        record_store: RecordStore,
        role_scheduler: RoleScheduler,
        timeout_store: Any,
        clock: Clock | None,
        logger: Logger | None,
    ) -> None:
        self._config = config
        log = _QuietLogger(logger or StdLogger(), config.debug)
        self._engine: Engine[T, S] = Engine(
            config,
            streamer=streamer,
            record_store=record_store,
            role_scheduler=role_scheduler,
            timeout_store=timeout_store,
            clock=clock or SystemClock(),
            logger=log,
        )
        self._supervisor: Supervisor | None = None
        self._running = False
        self._lock = asyncio.Lock()
        wrap = self._engine.threads.wrap
        self._callback_fns = {
            status: [(spec, wrap(spec.fn)) for spec in specs]
            for status, specs in config.callbacks.items()
        }
        self._processes = plan_processes(self._engine, self)
        self._states: dict[str, State] = {p.name: State.UNKNOWN for p in self._processes}

    # ------------------------------------------------------------------ identity

    @property
    def name(self) -> str:
        """The workflow's name."""
        return self._config.name

    @property
    def record_store(self) -> RecordStore:
        return self._engine.store

    @property
    def clock(self) -> Clock:
        return self._engine.clock

    @property
    def status_type(self) -> type[S]:
        return self._config.status_type

    @property
    def object_type(self) -> type[T]:
        return self._config.object_type

    # ------------------------------------------------------------------ processes

    def _on_state(self, name: str, state: State) -> None:
        self._states[name] = state

    async def run(self) -> None:
        """Start every background process (idempotent). Processes wait for their roles."""
        async with self._lock:
            if self._running:
                return
            supervisor = Supervisor(
                self._engine.roles, self._engine.logger, on_state=self._on_state
            )
            self._supervisor = supervisor
            for process in self._processes:
                supervisor.start(process)
            self._running = True

    async def stop(self) -> None:
        """Stop every process and wait until each has ended (running steps finish or are
        cancelled; steps in threads finish). Safe to call more than once, or before run()."""
        async with self._lock:
            supervisor = self._supervisor
            self._running = False
            if supervisor is None:
                return
            self._supervisor = None
            await supervisor.stop()
            self._engine.threads.shutdown()

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
        return [p.name for p in self._processes]

    def _contexts(self) -> list[ProcessContext]:
        return [] if self._supervisor is None else list(self._supervisor.contexts.values())

    def _idle(self) -> bool:
        """No process of this instance has work in hand or pending (for ``run_until_idle``)."""
        return all(ctx.idle() for ctx in self._contexts())

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [] if self._supervisor is None else self._supervisor.tasks()

    # ------------------------------------------------------------------ runs

    def _require_running(self, what: str) -> None:
        if not self._running:
            raise NotRunning(f"{what} failed: workflow is not running")

    def _status_in_graph(self, status: int, what: str) -> int:
        if (
            isinstance(status, bool)
            or not isinstance(status, int)
            or status not in self._engine.graph
        ):
            raise InvalidTransition(
                f"{what} failed: status provided is not configured for workflow: {status!r}"
            )
        return int(status)

    async def trigger(
        self, foreign_id: str, *, initial: T | None = None, start_at: S | None = None
    ) -> str:
        """Start a run for ``foreign_id`` and return its run ID.

        Starts at ``start_at`` (default: the first status with no incoming edge) with
        ``initial`` as the object (default: the type's zero value). Raises ``NotRunning``
        before ``run()``, ``WorkflowInProgress`` if the foreign ID has an active run.
        """
        self._require_running("trigger")
        engine = self._engine
        if start_at is None:
            status = engine.graph.starting()[0]
        else:
            status = self._status_in_graph(start_at, "trigger")
        obj = engine.codec.zero() if initial is None else initial
        write = engine.new_run(str(foreign_id), status, engine.codec.encode(obj))
        await engine.write(write)
        return write.record.run_id

    async def lookup(self, run_id: str) -> Run[T, S]:
        """The current state of a run (raises ``RecordNotFound``)."""
        record = await self._engine.store.lookup(run_id)
        return self._engine.to_run_unchecked(record)

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
        finishes another way first; keeps waiting while the run is paused. Bound it with
        ``asyncio.timeout``.
        """
        engine = self._engine
        target = self._status_in_graph(status, "wait")
        terminal = engine.graph.is_terminal(target)
        tag = uuid.uuid4().hex[:12]
        topics = [run_state_change_topic(engine.name)]
        if not terminal:
            topics.append(topic(engine.name, target))
        # 1. fix the stream positions, 2. read the store, 3. consume from the positions.
        receivers: list[EventReceiver] = []
        try:
            for t in topics:
                receivers.append(
                    await engine.streamer.new_receiver(
                        t,
                        make_role("await", engine.name, target, foreign_id, tag),
                        stream_from_latest=True,
                        poll_interval=poll_interval,
                    )
                )
            result = await self._check_reached(run_id, target, terminal)
            if result is not None:
                return result
            return await self._wait_events(receivers, run_id, target, terminal)
        finally:
            for rx in receivers:
                await rx.close()

    async def _check_reached(
        self, run_id: str, target: int, terminal: bool, reached: bool = False
    ) -> Run[T, S] | None:
        try:
            record = await self._engine.store.lookup(run_id)
        except RecordNotFound:
            return None
        state = record.run_state
        if state in (RunState.DATA_DELETED, RunState.REQUESTED_DATA_DELETED):
            raise RunEnded(record, f"run {run_id} had its data deleted")
        at_target = record.status == target
        if terminal:
            if at_target and state is RunState.COMPLETED:
                return self._engine.to_run_unchecked(record)
        elif at_target or reached or target in record.meta.reached:
            return self._engine.to_run_unchecked(record)
        if state.finished():
            raise RunEnded(
                record,
                f"run {run_id} ended ({state}) at {self._engine.status_name(record.status)} "
                f"without reaching {self._engine.status_name(target)}",
            )
        return None

    async def _wait_events(
        self, receivers: list[EventReceiver], run_id: str, target: int, terminal: bool
    ) -> Run[T, S]:
        if len(receivers) == 1:
            return await self._wait_one(receivers[0], run_id, target, terminal)
        queue: asyncio.Queue[Event] = asyncio.Queue()

        async def pump(rx: EventReceiver) -> None:
            while True:
                for event in await rx.recv(64):
                    if event.headers.get(Header.RUN_ID) == run_id:
                        queue.put_nowait(event)

        status_topic = topic(self._engine.name, target)
        tasks = [asyncio.ensure_future(pump(rx)) for rx in receivers]
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait([getter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    for t in tasks:
                        if t.done():
                            t.result()  # a receiver failed: raise its error
                    continue
                event = getter.result()
                reached = event.headers.get(Header.TOPIC) == status_topic
                result = await self._check_reached(run_id, target, terminal, reached)
                if result is not None:
                    return result
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks)

    async def _wait_one(
        self, rx: EventReceiver, run_id: str, target: int, terminal: bool
    ) -> Run[T, S]:
        while True:
            for event in await rx.recv(64):
                if event.headers.get(Header.RUN_ID) != run_id:
                    continue
                result = await self._check_reached(run_id, target, terminal)
                if result is not None:
                    return result

    async def callback(self, foreign_id: str, status: S, payload: bytes = b"") -> None:
        """Hand ``payload`` to the callbacks registered for ``status``.

        Targets the latest run of ``foreign_id``; does nothing if that run is not at
        ``status`` or is stopped. Errors of the callback function are raised to the caller;
        an invalid result raises ``InvalidTransition``.
        """
        engine = self._engine
        specs = self._callback_fns.get(int(status), [])
        for _spec, fn in specs:
            record = await engine.store.latest(engine.name, str(foreign_id))
            if record.status != int(status) or record.run_state.stopped():
                return
            try:
                run = engine.to_run(record)
            except PoisonRun as exc:
                raise InvalidTransition(str(exc)) from exc
            with engine.tracing.span(
                f"conveyor callback {engine.status_name(int(status))}",
                run_id=record.run_id,
                workflow=engine.name,
            ):
                result = await fn(run, bytes(payload))
                try:
                    write = engine.result_write(record, run, result)
                except PoisonRun as exc:
                    raise InvalidTransition(str(exc)) from exc
                if write is not None:
                    await engine.write(write)

    async def schedule(
        self,
        foreign_id: str,
        spec: str,
        *,
        initial: T | None = None,
        filter: Callable[[datetime], bool | Awaitable[bool]] | None = None,
        tz: tzinfo = UTC,
        err_backoff: float = 1.0,
    ) -> None:
        """Trigger a run for ``foreign_id`` at every slot of the cron ``spec``; blocks.

        Cancel the calling task (or ``stop()`` the workflow) to end it. ``spec`` is standard
        cron (ranges, lists, steps), a descriptor (``@hourly``, ``@daily``, ``@monthly``, ...)
        or ``@every <duration>`` (``@every 90s``). Slots are computed from the creation time
        of the foreign ID's latest run (so a slot missed while down fires at start-up), then
        from the time each slot fired. ``filter(slot)`` returning false skips a slot. A slot
        whose previous run is still in progress is skipped. The schedule runs under its own
        role, so with several instances only one fires it.
        """
        self._require_running("schedule")
        try:
            parsed = Schedule(spec, tz)
        except ValueError as exc:
            raise InvalidSchedule(f"schedule failed: {exc}") from exc
        supervisor = self._supervisor
        assert supervisor is not None
        engine = self._engine
        check = engine.threads.wrap(filter) if filter is not None else None
        name = make_role(foreign_id, "scheduler", spec)

        async def body(ctx: ProcessContext) -> None:
            try:
                last = (await engine.store.latest(engine.name, foreign_id)).created_at
            except RecordNotFound:
                last = engine.clock.now()
            while True:
                slot = parsed.next_after(last)
                await engine.clock.sleep_until(slot)
                ctx.busy = True
                if check is None or await check(slot):
                    try:
                        await self.trigger(foreign_id, initial=initial)
                    except WorkflowInProgress:
                        pass
                last = max(slot, engine.clock.now())
                ctx.busy = False
                ctx.progress()

        process = Process(
            name,
            make_role(engine.name, foreign_id, "scheduler", spec),
            body,
            err_backoff,
            engine.metrics.process(name),
        )
        task = supervisor.start(process)
        try:
            await asyncio.shield(task)
        finally:
            await supervisor.end(name)

    # ------------------------------------------------------------------ run states

    def controller(self, record: Record) -> RunStateController:
        """A ``RunStateController`` for ``record`` (moves compare-and-set on its version)."""
        return RunStateController(self._engine, record)

    async def pause(self, run_id: str, reason: str = "") -> Record:
        """Pause a run (Initiated or Running). Raises ``InvalidTransition`` otherwise."""
        return await move_with_retry(self._engine, run_id, "pause", reason)

    async def resume(self, run_id: str) -> Record:
        """Resume a paused run: its current step runs again."""
        return await move_with_retry(self._engine, run_id, "resume")

    async def cancel(self, run_id: str, reason: str = "") -> Record:
        """Cancel a run (Running or Paused)."""
        return await move_with_retry(self._engine, run_id, "cancel", reason)

    async def delete_data(self, run_id: str, reason: str = "") -> Record:
        """Ask for a finished run's object to be scrubbed (Completed, Cancelled, DataDeleted)."""
        return await move_with_retry(self._engine, run_id, "delete_data", reason)

    async def list_runs(self, foreign_id: str) -> Sequence[Record]:
        """Every run of ``foreign_id`` in this workflow, oldest first."""
        from ._protocols import RecordFilter

        return await self._engine.store.list(
            self.name, limit=10_000, filter=RecordFilter(foreign_ids=(foreign_id,))
        )
