"""Capabilities: what an adapter may offer beyond the four core contracts.

The engine and ``conveyor.testing`` look for these with ``isinstance`` (each is a
runtime-checkable Protocol) and never probe for attributes. An adapter that claims one runs
its conformance suite from ``conveyor.adaptertest`` (``ReportsPendingSuite`` and so on), so
a claim that does not hold fails there rather than in a user's test.

- ``ReportsPending`` (an ``EventReceiver``): tells whether events it has not handed out
  exist. ``conveyor.testing.run_until_idle`` needs it of every receiver a workflow opens.
- ``ReadsPartitions`` (an ``EventReceiver`` or a connector consumer): its topic is split
  into partitions (Kafka), each in its own order with its own cursor; it tells which one
  an event came from, so order and cursors are checked per partition.
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
- ``ListsRuns`` (a ``RecordStore``): runs by a filter (``RunQuery``), a page at a time with
  an opaque cursor (``RunPage``), every query shape served by an index.
- ``KeepsDefinitions`` (a ``RecordStore``): the definitions running workflows registered
  (``DefinitionRecord``), so tools with only a store URL know names and graphs.
- ``PinsEventLocation`` (a ``RecordStore``): where the deployment's events go, recorded
  once, so a process configured to send them elsewhere is refused at ``connect`` instead of
  splitting the event stream.
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
    "DefinitionRecord",
    "Failure",
    "HistoryEntry",
    "KeepsDefinitions",
    "KeepsHistory",
    "KeepsSnapshots",
    "ListsRuns",
    "NotifiesChanges",
    "PinsEventLocation",
    "PublishesEvents",
    "ReadsPartitions",
    "RecordsFailures",
    "ReportsOutbox",
    "ReportsPending",
    "RunPage",
    "RunQuery",
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
class ReadsPartitions(Protocol):
    """An event receiver (or connector consumer) over a partitioned log, such as Kafka.

    Its topic is split into partitions; every event of one foreign ID (one run) goes to the
    same partition. Each partition keeps its own order and, under ``Delivery.CURSOR``, its
    own cursor: first deliveries come in increasing ``id`` order *within a partition*
    (events of different partitions interleave in any order), and a receiver opened again
    starts each partition after that partition's unbroken run of acknowledgements.
    """

    def partition(self, event: object) -> int:
        """The partition ``event``, handed out by this receiver, was read from."""
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


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs to list. Every field narrows; the default lists every run, newest first.

    ``foreign_id`` matches exactly, ``foreign_id_prefix`` by prefix (both may be given);
    ``run_id_prefix`` keeps the runs whose run ID starts with it (what resolves a short
    run ID such as ``312a28fe``: ``RunQuery(run_id_prefix=...)`` with ``limit=2`` finds
    the one run, or tells that there are several). Prefixes compare code points: no
    wildcards (``%``, ``_`` and ``\\`` are text), no case folding, and the empty prefix
    filters nothing; a run ID prefix no store can hold (a NUL, a lone surrogate) matches
    no run. ``created_after`` is inclusive and ``created_before`` exclusive (the record's
    own ``created_at``, the engine's clock).
    """

    workflow_name: str = ""
    foreign_id: str | None = None
    foreign_id_prefix: str | None = None
    run_id_prefix: str | None = None
    statuses: tuple[int, ...] = ()
    run_states: tuple[RunState, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    newest_first: bool = True


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs, and the cursor of the next page (``None``: this was the last)."""

    records: Sequence[Record]
    cursor: str | None = None


@runtime_checkable
class ListsRuns(Protocol):
    """A record store that lists runs by a filter, a page at a time, with a cursor."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        """Up to ``limit`` runs matching ``query`` in creation order (newest first unless
        ``query.newest_first`` is false), starting after ``cursor`` (an opaque string a
        previous page of the same query returned).

        Paging is by keyset, not offset: a page costs the same however deep it is, and
        runs created or moved meanwhile neither shift nor repeat the pages that follow
        (a run that changed status may leave or enter a status filter). Runs created in
        the same instant are ordered by run ID. A cursor this store did not make raises
        ``ValueError``-like ``AdapterError``.
        """
        ...

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        """How many runs match ``query``, counting at most ``cap`` (a page that shows
        "10,000+" stays fast with a million runs)."""
        ...


@dataclass(frozen=True, slots=True)
class DefinitionRecord:
    """A workflow definition as a running workflow registered it.

    ``document`` is canonical JSON (sorted keys, no spaces) of what tools need without
    the code: the status names and numbers, the graph's edges, which statuses have steps,
    callbacks and timeouts. ``hash`` is its SHA-256 in hex; ``version`` counts the
    different documents registered for the workflow (1 for the first).
    """

    workflow_name: str
    version: int
    hash: str
    document: str
    registered_at: datetime


@runtime_checkable
class KeepsDefinitions(Protocol):
    """A record store that keeps the definitions of the workflows that ran on it."""

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        """Record ``document`` as the workflow's definition and return what is kept.

        If the workflow's latest registered definition has the same ``hash``, nothing is
        written and that one is returned (every process registers at start); otherwise
        the document becomes a new version. Concurrent registrations of one document
        keep one version.
        """
        ...

    async def definitions(self) -> Sequence[DefinitionRecord]:
        """The latest definition of every workflow, by workflow name."""
        ...

    async def definition_versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        """Every registered version of one workflow's definition, oldest first."""
        ...


@runtime_checkable
class PinsEventLocation(Protocol):
    """A record store that records where its deployment's events go."""

    async def pin_event_location(self, location: str) -> str:
        """Record ``location`` if no location is recorded yet, and return the recorded one.

        ``location`` is an opaque string without secrets (``conveyor.connect`` passes
        ``"store"`` for events kept by the record store's own backend, else the events
        URL's scheme, host, port and path). Atomic: of concurrent first calls with
        different locations, one is recorded and every call returns it.
        """
        ...

    async def repin_event_location(self, location: str) -> None:
        """Record ``location`` whatever was recorded (the last step of moving a
        deployment's events elsewhere, once the old location is drained)."""
        ...
