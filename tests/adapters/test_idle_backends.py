"""``run_until_idle`` works on SQLite and PostgreSQL as it does on memory, because their
receivers report what they have not handed out (``conveyor.abc.ReportsPending``); it
refuses at once a workflow whose receivers cannot tell. A store that publishes its own
events (``conveyor.abc.PublishesEvents``) runs no outbox relay, and only with the streamer
it publishes to.
"""

from __future__ import annotations

import enum
import importlib.util
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

import conveyor
from _services import in_ci
from conveyor import Backend, Builder, BuildError, Run, RunState, Workflow
from conveyor.abc import Delivery, Event, EventReceiver, EventSender, EventStreamer, RecordStore
from conveyor.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from conveyor.testing import run_until_idle

HAVE_ASYNCPG = importlib.util.find_spec("asyncpg") is not None
if HAVE_ASYNCPG:
    from _pg_support import migrated, pg_url

__all__ = ["pg_url"]

WAIT = 10.0
RUNS = 5
RELAY = "outbox-consumer"
"""The process name of the outbox relay (the original's)."""


class Status(enum.IntEnum):
    UNKNOWN = 0
    STARTED = 1
    CHECKED = 2
    APPROVED = 3
    DONE = 4


async def _check(run: Run[dict[str, str], Status]) -> Status:
    run.object["checked"] = "yes"
    return Status.CHECKED


async def _approve(run: Run[dict[str, str], Status]) -> Status:
    return Status.APPROVED


async def _finish(run: Run[dict[str, str], Status]) -> Status:
    run.object["done"] = "yes"
    return Status.DONE


def _build(
    streamer: EventStreamer, store: RecordStore, backend: Backend | None = None
) -> Workflow[dict[str, str], Status]:
    """Three steps in a row (DONE is terminal), named uniquely (backends shared by tests)."""
    b = Builder(f"idle-{uuid.uuid4().hex[:12]}", dict, Status)
    b.add_step(Status.STARTED, _check, Status.CHECKED)
    b.add_step(Status.CHECKED, _approve, Status.APPROVED)
    b.add_step(Status.APPROVED, _finish, Status.DONE)
    roles = MemoryRoleScheduler() if backend is None else backend.role_scheduler
    return b.build(streamer, store, roles)


async def _trigger_then_run_until_idle(
    wf: Workflow[dict[str, str], Status], store: RecordStore
) -> None:
    """Trigger ``RUNS`` runs, wait with ``run_until_idle`` only, and check that it was
    really idle: every record is final and no outbox event waits."""
    async with wf:
        # Given runs triggered on a started workflow
        run_ids = [await wf.trigger(f"user-{i}") for i in range(RUNS)]

        # When run_until_idle returns
        await run_until_idle(wf, timeout=WAIT)

        # Then every run has completed, as stored, and nothing waits to be relayed
        records = [await store.lookup(run_id) for run_id in run_ids]
        assert [(r.status, r.run_state) for r in records] == [
            (Status.DONE, RunState.COMPLETED)
        ] * RUNS
        assert list(await store.list_outbox_events(wf.name, 100)) == []
        for run_id in run_ids:
            assert (await wf.lookup(run_id)).object == {"checked": "yes", "done": "yes"}


# --------------------------------------------------------------------------- the backends


async def test_run_until_idle_returns_when_every_run_on_sqlite_is_final(tmp_path: Path) -> None:
    async with conveyor.connect(f"sqlite:///{tmp_path}/idle.db") as backend:
        wf = _build(backend.streamer, backend.record_store, backend)
        # SQLite keeps a transactional outbox: the relay runs
        assert RELAY in wf.process_names()

        await _trigger_then_run_until_idle(wf, backend.record_store)


@pytest.mark.postgres
@pytest.mark.skipif(
    not HAVE_ASYNCPG and not in_ci(),
    reason="PostgreSQL is unavailable: asyncpg is not installed (pip install 'conveyor[postgres]')",
)
async def test_run_until_idle_returns_when_every_run_on_postgres_is_final(pg_url: str) -> None:
    schema = "idle_tests"
    await migrated(pg_url, schema)
    async with conveyor.connect(f"{pg_url}?schema={schema}") as backend:
        wf = _build(backend.streamer, backend.record_store, backend)
        # connect() builds a store that appends its events to the event log itself
        assert RELAY not in wf.process_names()

        await _trigger_then_run_until_idle(wf, backend.record_store)


# --------------------------------------------------------------------------- refusals


class _ReceiverWithoutPending:
    """An ``EventReceiver`` that cannot tell whether it is behind (no ``pending()``)."""

    def __init__(self, inner: EventReceiver) -> None:
        self._inner = inner

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        return await self._inner.recv(max_events)

    async def ack(self, event: Event) -> None:
        await self._inner.ack(event)

    async def close(self) -> None:
        await self._inner.close()


class StreamerWithoutPending:
    """A memory streamer whose receivers lack ``pending()`` (as a third-party one might)."""

    delivery = Delivery.CURSOR

    def __init__(self) -> None:
        self._inner = MemoryEventStreamer()

    async def new_sender(self, topic: str) -> EventSender:
        return await self._inner.new_sender(topic)

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> EventReceiver:
        inner = await self._inner.new_receiver(
            topic, name, stream_from_latest=stream_from_latest, poll_interval=poll_interval
        )
        return _ReceiverWithoutPending(inner)

    async def close(self) -> None:
        await self._inner.close()


async def test_run_until_idle_refuses_receivers_without_pending_before_its_timeout() -> None:
    # Given a running workflow whose streamer's receivers cannot report pending events
    wf = _build(StreamerWithoutPending(), MemoryRecordStore())
    async with wf:
        await wf.trigger("user-1")

        # When run_until_idle is asked, Then it raises TypeError naming the receiver and
        # the capability, instead of waiting for its timeout (a TimeoutError)
        with pytest.raises(TypeError, match=r"_ReceiverWithoutPending.*ReportsPending"):
            await run_until_idle(wf, timeout=WAIT)


class StorePublishingTo(MemoryRecordStore):
    """A store that claims to append its events to ``target`` (``PublishesEvents``)."""

    def __init__(self, target: EventStreamer) -> None:
        super().__init__()
        self._target = target

    @property
    def publishes_to(self) -> EventStreamer:
        return self._target


def test_a_store_publishing_to_another_streamer_fails_the_build() -> None:
    # Given a store that publishes to one streamer
    store = StorePublishingTo(MemoryEventStreamer())

    # When a workflow is built on it with another streamer, Then the build fails: the
    # workflow's consumers would never see the events
    with pytest.raises(BuildError, match="another event streamer"):
        _build(MemoryEventStreamer(), store)


def test_a_store_publishing_to_the_workflows_streamer_needs_no_relay() -> None:
    # Given a store that publishes to the streamer the workflow is built with
    streamer = MemoryEventStreamer()

    # When the workflow is built, Then it plans no outbox relay
    wf = _build(streamer, StorePublishingTo(streamer))

    assert RELAY not in wf.process_names()
    assert RELAY in _build(streamer, MemoryRecordStore()).process_names()
