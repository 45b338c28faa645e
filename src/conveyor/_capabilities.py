"""Capabilities: what an adapter may offer beyond the four core contracts.

The engine and ``conveyor.testing`` look for these with ``isinstance`` (each is a
runtime-checkable Protocol) and never probe for attributes. An adapter that claims one runs
its conformance suite from ``conveyor.adaptertest`` (``ReportsPendingSuite`` and so on), so
a claim that does not hold fails there rather than in a user's test.

- ``ReportsPending`` (an ``EventReceiver``): tells whether events it has not handed out
  exist. ``conveyor.testing.run_until_idle`` needs it of every receiver a workflow opens.
- ``PublishesEvents`` (a ``RecordStore``): each write appends its own event to the
  streamer's log in the write's transaction, so the workflow runs no outbox relay (the
  original's ``WithoutOutbox``, chosen by the store instead of a flag).
- ``KeepsSnapshots`` (a ``RecordStore``): every version of a run it ever stored, so
  ``conveyor.testing.require`` sees statuses a run has already passed.
- ``NotifiesChanges`` (a ``RecordStore``): a wake-up on every write, so test helpers wait
  on writes instead of polling.
- ``ReportsOutbox`` (a ``RecordStore``): how many outbox events wait to be relayed.
- ``TailsTopics`` (an ``EventStreamer``): a cursorless read of a topic from its current end
  (``Tail``), which one process's waits share instead of opening receivers each.
- ``RecordsFailures`` (a ``RecordStore``): failed attempts kept beside the run without
  writing it (``Failure``), so retries are per run and persisted, and operators see them.
- ``KeepsHistory`` (a ``RecordStore``): every version's status, run state and reason, and
  the failures between versions (``HistoryEntry``), without copies of the object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ._event import Event
from ._protocols import EventStreamer
from ._record import Failure, Record
from ._runstate import RunState

__all__ = [
    "Failure",
    "HistoryEntry",
    "KeepsHistory",
    "KeepsSnapshots",
    "NotifiesChanges",
    "PublishesEvents",
    "RecordsFailures",
    "ReportsOutbox",
    "ReportsPending",
    "Tail",
    "TailBatch",
    "TailsTopics",
]


@runtime_checkable
class ReportsPending(Protocol):
    """An event receiver that can tell whether it is behind its topic."""

    def pending(self) -> int:
        """How many events of the topic this receiver has not handed out, as far as this
        process knows; ``0`` means caught up.

        A hint, not a count: a positive number only promises that at least one event
        waits. After a send to the topic has returned (in this process, or in another
        one whose notification has arrived), a receiver that has not yet handed that event
        out must report a positive number; once it has handed everything out, ``0``.
        """
        ...


@runtime_checkable
class PublishesEvents(Protocol):
    """A record store that appends each write's event to an event log itself."""

    @property
    def publishes_to(self) -> EventStreamer | None:
        """The streamer whose log every write appends its event to, in the write's own
        transaction and exactly as the outbox relay would send it (same topic, type,
        headers and foreign ID), leaving no outbox event behind; ``None`` when this store
        keeps a transactional outbox like any other.

        A workflow built on this store and that streamer runs no outbox relay; built on
        another streamer it fails with ``BuildError`` (its consumers would never see the
        events).
        """
        ...


@runtime_checkable
class KeepsSnapshots(Protocol):
    """A record store that keeps every version of a run (the memory store, for tests)."""

    def snapshots(self, workflow_name: str, foreign_id: str, run_id: str) -> Sequence[Record]:
        """Every version of the run ever stored, oldest first (empty for an unknown run)."""
        ...


@runtime_checkable
class NotifiesChanges(Protocol):
    """A record store that wakes waiters on every write."""

    async def wait_for_change(self, timeout: float | None = None) -> None:
        """Return after the next applied write, or after ``timeout`` seconds (no error)."""
        ...


@runtime_checkable
class ReportsOutbox(Protocol):
    """A record store that can count its outbox without I/O."""

    def outbox_size(self) -> int:
        """How many outbox events (of every workflow) wait to be relayed."""
        ...


@dataclass(frozen=True, slots=True)
class TailBatch:
    """What a ``Tail`` hands out next: events in the topic's order, and whether some may
    have been missed before them.

    ``gap`` is true when the tail cannot rule out that events were committed to the topic
    and not handed out (it reconnected, a notification may have been lost, it fell behind
    what the backend keeps): its user re-checks whatever it watches. A batch may then
    hold no events at all.
    """

    events: Sequence[Event]
    gap: bool = False


@runtime_checkable
class Tail(Protocol):
    """Events of one topic from where the tail was opened: no cursor, no acknowledgements.

    Iterate with ``async for batch in tail``; iteration ends (``StopAsyncIteration``)
    once ``close()`` was called, also for a read waiting at that moment. Every event
    committed to the topic after ``tail()`` returned is handed out once, in the topic's
    order, unless a batch with ``gap`` set comes first. A tail keeps no state in the
    backend (no cursor row, no consumer, no connection of its own), so many may be open
    and one that is dropped without ``close()`` leaves nothing behind but its memory.
    Raises ``AdapterError`` if the backend fails in a way the tail cannot recover from;
    its user then opens a new one (and re-checks, as after a gap).
    """

    def __aiter__(self) -> AsyncIterator[TailBatch]: ...

    async def __anext__(self) -> TailBatch: ...

    async def close(self) -> None:
        """Stop: a pending or later read ends the iteration. Idempotent."""
        ...


@runtime_checkable
class TailsTopics(Protocol):
    """An event streamer that can follow a topic from its current end (``Tail``)."""

    async def tail(self, topic: str) -> Tail:
        """A tail of ``topic`` positioned at its current end: every event committed after
        this call returns comes out of it (events committed before it do not)."""
        ...


@runtime_checkable
class RecordsFailures(Protocol):
    """A record store that keeps failed attempts beside its runs."""

    async def record_failure(self, failure: Failure) -> bool:
        """Keep ``failure`` if the run's stored version is still ``failure.version``, in one
        atomic step (a compare and an insert); return whether it was kept.

        The record itself is not written: no event, the same version and ``updated_at``,
        so the version rule still holds. An unknown run or one that moved on keeps
        nothing (``False``). Recording the same key again replaces the earlier one.
        """
        ...

    async def failures(self, run_id: str, version: int | None = None) -> Sequence[Failure]:
        """The run's recorded failures, oldest first (only ``version``'s if given); empty
        for an unknown run."""
        ...

    async def retries_due(
        self, workflow_name: str, process: str, limit: int = 1000
    ) -> Sequence[Failure]:
        """For the runs whose latest failure was made by ``process`` and has a
        ``next_attempt_at``, and whose stored version is still that failure's version
        (whatever its run state: a hook's failure is on a stopped or finished run): that
        latest failure, earliest due first, at most ``limit``. (What a process that takes
        the role over must retry.)"""
        ...


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One version of a run as it was written, and the attempts that failed on it."""

    version: int
    status: int
    run_state: RunState
    reason: str
    at: datetime
    failures: tuple[Failure, ...] = ()


@runtime_checkable
class KeepsHistory(Protocol):
    """A record store that keeps every version's status, run state and reason."""

    async def history(self, run_id: str) -> Sequence[HistoryEntry]:
        """Every version of the run, oldest first, each with the failures recorded on it
        (empty for an unknown run).

        Written in the same transaction as each record write; holds no copy of the
        object; lives as long as its run. A write that moves a run to DataDeleted also
        empties the messages of its recorded failures (they may quote the object).
        """
        ...
