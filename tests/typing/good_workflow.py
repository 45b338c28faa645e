"""Type test: a complete workflow that must type-check under ``mypy --strict``, and run.

``tests/test_typing.py`` runs mypy on this file and expects no error, then runs ``main()``
on the memory adapters. The ``typing.assert_type`` calls are checked by mypy and, being
ordinary calls, also run. Every kind of user function appears, as ``async def`` and as
plain ``def``: steps returning statuses and every marker, callbacks, timers returning
``datetime | None``, timeouts, hooks taking ``TypedRecord``, ``custom_delete`` and a
connector; then the workflow's and ``conveyor.testing``'s return types.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import assert_never, assert_type

from conveyor import (
    Builder,
    Cancel,
    ConnectorEvent,
    Marker,
    OutboxOptions,
    Pause,
    Record,
    Run,
    RunState,
    SaveAndRepeat,
    Skip,
    StepBuilder,
    TimeoutBuilder,
    TypedRecord,
    Workflow,
    duration_timer,
)
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from conveyor.diagram import mermaid
from conveyor.testing import (
    FakeClock,
    await_timeout_insert,
    new_testing_run,
    require,
    run_until_idle,
    trigger_callback_on,
    wait_for,
)


class Status(enum.IntEnum):
    UNKNOWN = 0
    DRAFTED = 1
    CHECKED = 2
    REVIEWED = 3
    PUBLISHED = 4
    ARCHIVED = 5
    REJECTED = 6


@dataclass
class Doc:
    title: str = ""
    body: str = ""
    revisions: int = 0
    hold: bool = False
    spam: bool = False
    reviewer: str = ""
    archived_at: str = ""


HOOKS: list[str] = []
"""What the hooks saw, as ``<hook>:<foreign ID>``."""

# ---------------------------------------------------------------- steps


async def draft(run: Run[Doc, Status]) -> Status | Marker:
    """An async step that may return any marker."""
    assert_type(run.object, Doc)
    assert_type(run.status, Status)
    assert_type(run.run_state, RunState)
    assert_type(run.idempotency_key, str)
    if not run.object.title:
        return assert_type(run.skip(), Skip)
    if run.object.spam:
        return assert_type(run.cancel("spam"), Cancel)
    if run.object.hold:
        return assert_type(run.pause("held for review"), Pause)
    if run.object.revisions < 1:
        run.object.revisions += 1
        return assert_type(run.save_and_repeat(), SaveAndRepeat)
    return Status.CHECKED


def check(run: Run[Doc, Status]) -> Status | Marker:
    """A plain step (it runs in the workflow's thread pool) returning a status or a marker."""
    if run.object.hold:
        return run.pause()
    return Status.REVIEWED if run.object.body else Status.REJECTED


# ---------------------------------------------------------------- callbacks


def review(run: Run[Doc, Status], payload: bytes) -> Status | Marker:
    """A plain callback: the payload names the reviewer, or rejects."""
    if not payload:
        return run.skip()
    if payload == b"reject":
        return Status.REJECTED
    run.object.reviewer = payload.decode()
    return Status.PUBLISHED


async def withdraw(run: Run[Doc, Status], payload: bytes) -> Status | Marker:
    """An async callback on the same status (runs after ``review``)."""
    return Status.REJECTED if payload == b"withdraw" else run.skip()


# ---------------------------------------------------------------- timers and timeouts


def in_thirty_days(run: Run[Doc, Status], now: datetime) -> datetime | None:
    return now + timedelta(days=30)


async def never_for_drafts(run: Run[Doc, Status], now: datetime) -> datetime | None:
    return None if run.object.revisions == 0 else now + timedelta(days=365)


async def archive(run: Run[Doc, Status], now: datetime) -> Status | Marker:
    run.object.archived_at = now.isoformat()
    return Status.ARCHIVED


def reject_stale(run: Run[Doc, Status], now: datetime) -> Status:
    return Status.REJECTED


# ---------------------------------------------------------------- hooks, delete, connector


def paused(record: TypedRecord[Doc, Status]) -> None:
    HOOKS.append(f"paused:{record.foreign_id}")


async def cancelled(record: TypedRecord[Doc, Status]) -> None:
    assert_type(record.object, Doc)
    HOOKS.append(f"cancelled:{record.foreign_id}")


async def completed(record: TypedRecord[Doc, Status]) -> None:
    assert_type(record.status, Status)
    HOOKS.append(f"completed:{record.foreign_id}")


async def scrub(doc: Doc) -> Doc | None:
    return Doc(title=doc.title)


async def on_import(wf: Workflow[Doc, Status], event: ConnectorEvent) -> None:
    await wf.trigger(event.foreign_id, initial=Doc(title=event.id))


def weekdays(slot: datetime) -> bool:
    return slot.weekday() < 5


# ---------------------------------------------------------------- the workflow


def describe(result: Status | Marker) -> str:
    """Matching a step result is exhaustive: the marker set is closed."""
    match result:
        case Skip():
            return "skip"
        case Pause(reason=reason):
            return f"pause: {reason}"
        case Cancel(reason=reason):
            return f"cancel: {reason}"
        case SaveAndRepeat():
            return "save and repeat"
        case Status():
            return result.name
        case _:
            assert_never(result)


def build(clock: FakeClock, connector: MemoryConnector) -> Workflow[Doc, Status]:
    b = Builder("documents", Doc, Status)
    assert_type(b, Builder[Doc, Status])
    step = b.add_step(Status.DRAFTED, draft, Status.CHECKED)
    assert_type(step, StepBuilder[Doc, Status])
    assert_type(step.with_options(parallel_count=2, err_backoff=0.01), StepBuilder[Doc, Status])
    b.add_step(Status.CHECKED, check, Status.REVIEWED, Status.REJECTED)
    b.add_callback(Status.REVIEWED, review, Status.PUBLISHED, Status.REJECTED)
    b.add_callback(Status.REVIEWED, withdraw, Status.REJECTED)
    timeout = b.add_timeout(Status.PUBLISHED, in_thirty_days, archive, Status.ARCHIVED)
    assert_type(timeout.with_options(polling_frequency=3600), TimeoutBuilder)
    b.add_timeout(Status.PUBLISHED, never_for_drafts, reject_stale, Status.REJECTED)
    b.add_timeout(Status.PUBLISHED, duration_timer(timedelta(days=400)), archive, Status.ARCHIVED)
    b.add_connector("imports", connector, on_import).with_options(parallel_count=1)
    b.on_pause(paused)
    b.on_cancel(cancelled)
    b.on_complete(completed)
    wf = b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        timeout_store=MemoryTimeoutStore(),
        clock=clock,
        custom_delete=scrub,
        pause_retry=None,
        outbox=OutboxOptions(polling_frequency=3600),
    )
    assert_type(wf, Workflow[Doc, Status])
    return wf


async def daily_digest(wf: Workflow[Doc, Status]) -> None:
    """Type-checked only: ``schedule`` blocks until the workflow stops."""
    await wf.schedule("digest", "@daily", initial=Doc(title="digest"), filter=weekdays)


async def main() -> None:
    """Run the workflow through every kind of function (about a tenth of a second)."""
    HOOKS.clear()
    clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    connector = MemoryConnector([ConnectorEvent(id="imported", foreign_id="doc-import")])
    wf = build(clock, connector)
    assert_type(mermaid(wf), str)

    # A step called directly, in a unit test, on a run that is not stored
    result = await draft(new_testing_run(Doc(), Status.DRAFTED))
    assert_type(result, Status | Marker)
    assert describe(result) == "skip"

    async with wf, asyncio.timeout(10):
        # doc-1: saved and repeated once, checked, reviewed by a callback, archived by time
        run_id = await wf.trigger("doc-1", initial=Doc(title="T", body="B"))
        assert_type(run_id, str)
        reviewed = await wf.wait("doc-1", run_id, Status.REVIEWED)
        assert_type(reviewed, Run[Doc, Status])
        assert reviewed.object.revisions == 1
        await trigger_callback_on(wf, "doc-1", run_id, Status.REVIEWED, b"ada")
        published = await require(
            wf, "doc-1", Status.PUBLISHED, Doc(title="T", body="B", revisions=1, reviewer="ada")
        )
        assert_type(published, Run[Doc, Status])
        timeout = await await_timeout_insert(wf, "doc-1", run_id, Status.PUBLISHED)
        assert timeout.run_id == run_id
        await run_until_idle(wf)  # all three timeouts of PUBLISHED are in the store
        clock.advance(timedelta(days=30))
        archived = await wf.wait("doc-1", run_id, Status.ARCHIVED)
        assert archived.run_state is RunState.COMPLETED
        assert archived.object.archived_at == clock.now().isoformat()

        # doc-2: paused by a step, then cancelled and its data deleted by hand
        held_id = await wf.trigger("doc-2", initial=Doc(title="T", hold=True))
        held = await wait_for(wf, "doc-2", lambda run: run.run_state is RunState.PAUSED)
        assert_type(held, Run[Doc, Status])
        assert_type(await wf.cancel(held_id, "withdrawn"), Run[Doc, Status])
        deleting = await wf.delete_data(held_id, "asked to")
        assert_type(deleting, Run[Doc, Status])
        await wait_for(wf, "doc-2", lambda run: run.run_state is RunState.DATA_DELETED)
        assert (await wf.lookup(held_id)).object == Doc(title="T")

        # doc-3: cancelled by a step; the connector's run is rejected by the plain step
        await wf.trigger("doc-3", initial=Doc(title="T", spam=True))
        await require(wf, "doc-import", Status.REJECTED, Doc(title="imported", revisions=1))
        await run_until_idle(wf)
        runs = await wf.list_runs("doc-3")
        assert_type(runs[0], Record)
        assert runs[0].run_state is RunState.CANCELLED

    assert "completed:doc-1" in HOOKS
    assert "completed:doc-import" in HOOKS
    assert "paused:doc-2" in HOOKS
    assert "cancelled:doc-2" in HOOKS
    assert "cancelled:doc-3" in HOOKS


if __name__ == "__main__":
    asyncio.run(main())
