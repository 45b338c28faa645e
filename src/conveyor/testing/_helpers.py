"""Helpers for testing workflows: wait on conditions, never on fixed sleeps."""

from __future__ import annotations

import asyncio
import enum
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from .._capabilities import KeepsSnapshots, NotifiesChanges, ReportsOutbox, ReportsPending
from .._protocols import TimeoutRecord
from .._record import Meta, Record, Run
from .._runstate import RunState, State
from .._workflow import Workflow

__all__ = [
    "await_timeout_insert",
    "new_testing_run",
    "require",
    "run_until_idle",
    "trigger_callback_on",
    "wait_for",
]

T = TypeVar("T")
S = TypeVar("S", bound=enum.IntEnum)

DEFAULT_TIMEOUT = 10.0


async def _until(
    wf: Workflow[Any, Any], check: Callable[[], Awaitable[Any]], timeout: float, what: str
) -> Any:
    """Evaluate ``check`` after every store write until it returns non-None.

    Waits on the store's writes if it ``NotifiesChanges``, else polls (with the deadline).
    """
    store = wf.record_store
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result is not None:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        if isinstance(store, NotifiesChanges):
            await store.wait_for_change(min(remaining, 0.5))
        else:  # a store without change notifications: poll with a deadline
            await asyncio.sleep(min(remaining, 0.01))


async def require(
    wf: Workflow[T, S],
    foreign_id: str,
    status: S,
    expected: T,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Run[T, S]:
    """Wait until the latest run of ``foreign_id`` has been at ``status``; check its object.

    The object stored at that status must equal ``expected`` after ``expected`` makes a
    round trip through the workflow's codec (so custom encodings compare correctly).
    Raises ``AssertionError`` on a mismatch and ``TimeoutError`` if it never gets there.
    """
    if int(status) not in wf.definition.graph:
        raise ValueError(f"status {status!r} is not part of workflow {wf.name!r}")
    runs = wf._engine.runs
    store = wf.record_store

    async def check() -> Record | None:
        try:
            latest = await store.latest(wf.name, foreign_id)
        except LookupError:
            return None
        history = (
            store.snapshots(wf.name, foreign_id, latest.run_id)
            if isinstance(store, KeepsSnapshots)
            else [latest]
        )
        for record in history:
            if record.status == int(status):
                return record
        return None

    record: Record = await _until(wf, check, timeout, f"{foreign_id} to reach {status!r}")
    want = runs.codec.decode(runs.codec.encode(expected))
    got = runs.codec.decode(record.object)
    assert got == want, f"object at {status!r}: expected {want!r}, got {got!r}"
    return runs.view(record)


async def wait_for(
    wf: Workflow[T, S],
    foreign_id: str,
    predicate: Callable[[Run[T, S]], bool | Awaitable[bool]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Run[T, S]:
    """Wait until ``predicate`` holds for the latest run of ``foreign_id``; return that run."""

    async def check() -> Run[T, S] | None:
        try:
            record = await wf.record_store.latest(wf.name, foreign_id)
        except LookupError:
            return None
        run = wf._engine.runs.view(record)
        ok = predicate(run)
        if inspect.isawaitable(ok):
            ok = await ok
        return run if ok else None

    result: Run[T, S] = await _until(wf, check, timeout, f"predicate on {foreign_id}")
    return result


async def trigger_callback_on(
    wf: Workflow[T, S],
    foreign_id: str,
    run_id: str,
    status: S,
    payload: object,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Wait for the run to reach ``status``, then call back with ``payload`` as JSON."""
    async with asyncio.timeout(timeout):
        await wf.wait(foreign_id, run_id, status)
    data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    await wf.callback(foreign_id, status, data)


async def await_timeout_insert(
    wf: Workflow[T, S],
    foreign_id: str,
    run_id: str,
    status: S,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> TimeoutRecord:
    """Wait until a timeout exists for the run at ``status``; return it."""
    store = wf.timeout_store
    if store is None:
        raise ValueError(f"workflow {wf.name!r} has no timeout store")
    deadline = time.monotonic() + timeout
    while True:
        for t in await store.list(wf.name):
            if t.run_id == run_id and t.foreign_id == foreign_id and t.status == int(status):
                return t
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no timeout was inserted for {run_id} at {status!r}")
        await store.wait_for_insert(wf.name, min(remaining, 0.05))


def new_testing_run(
    obj: T,
    status: S,
    *,
    workflow_name: str = "testing",
    foreign_id: str = "testing-foreign-id",
    run_id: str | None = None,
    run_state: RunState = RunState.RUNNING,
    version: int = 1,
    reason: str = "",
    now: datetime | None = None,
) -> Run[T, S]:
    """A ``Run`` to call a step function with directly, in a unit test.

    The step's return value (a status or a marker from ``run.pause()`` etc.) is what the
    test checks; nothing is stored.
    """
    now = now or datetime.now(UTC)
    return Run(
        workflow_name,
        foreign_id,
        run_id or str(uuid.uuid4()),
        run_state,
        status,
        obj,
        now,
        now,
        Meta(run_state_reason=reason, status_description=status.name, version=version),
    )


async def run_until_idle(*workflows: Workflow[Any, Any], timeout: float = DEFAULT_TIMEOUT) -> None:
    """Return once none of ``workflows`` has work left that does not wait on the clock.

    Idle means: every process holds its role, no outbox event waits to be relayed, and
    every consumer has handled everything its topic holds (events held back by
    ``consume_lag`` until the clock moves count as idle). Needs receivers that report
    whether they are behind (``conveyor.abc.ReportsPending``: every built-in adapter's do);
    raises ``TypeError`` at once for one that cannot tell.
    """
    if not workflows:
        raise ValueError("run_until_idle needs at least one workflow")
    deadline = time.monotonic() + timeout
    loop = asyncio.get_running_loop()
    stable = 0
    spins = 0
    while stable < 3:
        # Idle only when no callback is ready to run (a task woken by the clock or a
        # signal may be several hops from resuming) and no process has work in hand.
        if not _loop_has_ready_callbacks(loop) and _idle(workflows):
            stable += 1
        else:
            stable = 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"workflows still busy after {timeout}s")
        spins += 1
        # Let ready tasks run; after a while, give threads (sync steps) real time too.
        await asyncio.sleep(0 if spins < 200 else 0.001)


def _loop_has_ready_callbacks(loop: asyncio.AbstractEventLoop) -> bool:
    ready = getattr(loop, "_ready", None)  # CPython's selector loop; others: assume none
    return bool(ready)


def _idle(workflows: tuple[Workflow[Any, Any], ...]) -> bool:
    for wf in workflows:
        store = wf.record_store
        if isinstance(store, ReportsOutbox) and store.outbox_size() > 0:
            return False
        for ctx in wf._contexts():
            for rx in ctx.receivers:
                if not isinstance(rx, ReportsPending):
                    raise TypeError(
                        f"run_until_idle cannot tell whether {type(rx).__name__} (process "
                        f"{ctx.name!r}) is behind: its receivers must implement pending() "
                        "(conveyor.abc.ReportsPending)"
                    )
            if not ctx.idle():
                return False
    # Every process of the workflow's plan must be running in one of the instances.
    running: set[tuple[str, str]] = set()
    for wf in workflows:
        for name, state in wf.states().items():
            if state is State.RUNNING:
                running.add((wf.name, name))
    return all((wf.name, name) in running for wf in workflows for name in wf.process_names())
