"""The adapter contracts: what a backend must do for the engine, and what is atomic.

Every adapter runs the matching suite from ``conveyor.adaptertest``. The contracts are
shaped for batching: receivers hand out several events at once (each acknowledged on its
own), senders take several events, and stores commit several writes in one transaction
with a compare-and-set outcome per write.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable

from ._errors import WorkflowError
from ._event import Event, OutboxEvent
from ._frozen import fast_init
from ._record import Record
from ._runstate import RunState

__all__ = [
    "Delivery",
    "EventReceiver",
    "EventSender",
    "EventStreamer",
    "Lease",
    "Logger",
    "Order",
    "OutgoingEvent",
    "RecordFilter",
    "RecordStore",
    "RecordWrite",
    "RoleScheduler",
    "TimeoutRecord",
    "TimeoutStore",
]


# --------------------------------------------------------------------------- events


class OutgoingEvent(NamedTuple):
    """One event to send: ``foreign_id`` carries the run ID for engine events."""

    foreign_id: str
    type: int
    headers: Mapping[str, str]


@runtime_checkable
class EventSender(Protocol):
    """Appends events to one topic."""

    async def send(self, foreign_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        """Append one event. Raises ``AdapterError`` if it could not be appended."""
        ...

    async def send_many(self, events: Sequence[OutgoingEvent]) -> None:
        """Append several events in order (atomically where the backend can)."""
        ...

    async def close(self) -> None:
        """Release resources. Idempotent: a second call returns ``None``."""
        ...


class Delivery(enum.Enum):
    """What a receiver opened again under the same name is handed (its streamer's
    ``delivery`` profile). Under both, delivery is at least once, a new receiver name reads
    every retained event of the topic from the start (unless it streams from latest), and
    the engine's version rule makes a delivery again harmless, in any order.
    """

    CURSOR = "cursor"
    """A table log: one cursor per receiver name, which advances only over an unbroken run
    of acknowledged events. A receiver opened again starts after that run, so an
    acknowledged event that followed an unacknowledged one comes again too, and events
    always come in increasing ``id`` order. A partitioned log (``ReadsPartitions``,
    Kafka) keeps one such cursor, and that order, per partition."""

    PER_EVENT = "per_event"
    """A broker that acknowledges each message (Redis consumer groups, NATS JetStream,
    RabbitMQ): a receiver opened again is handed what was not acknowledged, and nothing that
    was. Events come in increasing ``id`` order the first time; one delivered again may
    come after events with higher IDs."""


@runtime_checkable
class EventReceiver(Protocol):
    """Reads one topic under the receiver's name (its consumer group, its cursor).

    Delivery is at least once. First deliveries come in increasing ``id`` order (within
    each partition, for a receiver that ``ReadsPartitions``). What a
    receiver opened later under the same name is handed again depends on the streamer's
    ``delivery`` profile (``Delivery``): after the last unbroken run of acknowledged
    events (``CURSOR``), or exactly the unacknowledged events (``PER_EVENT``). An event
    whose stored headers no longer decode is handed out with empty ``headers`` (consumers
    skip it), never raised: one bad row must not stop its topic.
    """

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        """Wait until at least one event is available; return 1..``max_events`` of them.

        Cancellable. Events already handed out by this receiver are not handed out
        again by it (only by a new receiver of the same name, if never acknowledged).
        """
        ...

    async def ack(self, event: Event) -> None:
        """Acknowledge one event handed out by this receiver (in any order)."""
        ...

    async def close(self) -> None:
        """Stop receiving. Idempotent: a second call returns ``None``."""
        ...


@runtime_checkable
class EventStreamer(Protocol):
    """Creates senders and receivers over named topics."""

    @property
    def delivery(self) -> Delivery:
        """What a receiver opened again under the same name is handed (``Delivery``); the
        ``EventStreamerSuite`` checks the profile a streamer declares, usually as a class
        attribute."""
        ...

    async def new_sender(self, topic: str) -> EventSender:
        """A sender for ``topic``."""
        ...

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> EventReceiver:
        """A receiver for ``topic`` reading from the cursor stored under ``name``.

        With ``stream_from_latest`` and no stored cursor for ``name``, the receiver starts
        after the last event that exists *when this method returns* (not at the first
        ``recv``). A stored cursor always wins. ``poll_interval`` bounds how long a backend
        without push notifications waits between looks; push backends may ignore it.
        """
        ...

    async def close(self) -> None:
        """Release what the adapter holds (connections, tasks). Idempotent."""
        ...


# --------------------------------------------------------------------------- records


class Order(enum.Enum):
    """Ordering of ``RecordStore.list`` by creation time (then insertion)."""

    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Conditions for ``RecordStore.list``; empty tuples and ``None`` match everything.

    ``created_after``/``created_before`` are strict: ``after < created_at < before``.
    """

    foreign_ids: tuple[str, ...] = ()
    statuses: tuple[int, ...] = ()
    run_states: tuple[RunState, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None

    def matches(self, record: Record) -> bool:
        """Whether ``record`` passes every condition (the reference semantics)."""
        if self.foreign_ids and record.foreign_id not in self.foreign_ids:
            return False
        if self.statuses and record.status not in self.statuses:
            return False
        if self.run_states and record.run_state not in self.run_states:
            return False
        if self.created_after is not None and not record.created_at > self.created_after:
            return False
        return not (self.created_before is not None and not record.created_at < self.created_before)


@fast_init
@dataclass(frozen=True, slots=True)
class RecordWrite:
    """One record write with its outbox event and the version it expects to replace.

    ``expected_version == 0`` inserts a new run: it fails with ``VersionConflict`` if the
    run ID exists and with ``WorkflowInProgress`` if the foreign ID already has an active
    (Initiated, Running or Paused) run in the workflow. Otherwise the write applies only
    if the stored version equals ``expected_version``.
    """

    record: Record
    outbox: OutboxEvent
    expected_version: int = field(default=0)
    previous_run_state: RunState = RunState.UNKNOWN
    """Informational (metrics, logs): the run state this write replaces. Stores ignore it."""


@runtime_checkable
class RecordStore(Protocol):
    """Keeps records and their transactional outbox.

    Timestamps are the record's own (the engine's clock), never the database's.

    Poison rows never block: a stored row that no longer decodes (a run state outside
    ``RunState``, unreadable metadata) makes ``lookup`` and ``latest`` raise
    ``DecodeError`` for that record alone (a batched lookup fails only that item), with
    ``run_id`` set and ``record`` a stand-in: the row's identity, status, object bytes (or
    ``b""``) and version as stored, run state ``UNKNOWN``, and what is wrong as
    ``meta.run_state_reason`` (the engine pauses such a run with a compare-and-set on
    that version). ``list`` returns such stand-ins among the healthy records. An outbox
    row whose headers do not decode is listed with empty ``headers`` (the relay rebuilds
    its event from the record).
    """

    async def store(self, write: RecordWrite) -> None:
        """Apply one write: record and outbox event together, or neither.

        Raises ``VersionConflict`` or ``WorkflowInProgress`` (see ``RecordWrite``).
        """
        ...

    async def store_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        """Apply several writes, each with its own compare-and-set.

        Returns one outcome per write, in order: ``None`` when applied, else the
        ``VersionConflict``/``WorkflowInProgress`` it would have raised. A failed write
        does not prevent the others. Raises ``AdapterError`` only if the batch as a whole
        failed (then none of it applied).
        """
        ...

    async def lookup(self, run_id: str) -> Record:
        """The record of ``run_id``. Raises ``RecordNotFound``."""
        ...

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        """The most recently created run of the foreign ID. Raises ``RecordNotFound``."""
        ...

    async def list(
        self,
        workflow_name: str = "",
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = Order.ASC,
        filter: RecordFilter | None = None,
    ) -> Sequence[Record]:
        """Records by creation order: skip ``offset`` matches, return up to ``limit``.

        An empty ``workflow_name`` lists every workflow. ``Order.DESC`` pages newest first.
        """
        ...

    async def list_outbox_events(self, workflow_name: str, limit: int) -> Sequence[OutboxEvent]:
        """Up to ``limit`` outbox events of the workflow, oldest first."""
        ...

    async def delete_outbox_events(self, ids: Sequence[str]) -> None:
        """Remove relayed outbox events; unknown IDs are ignored."""
        ...

    async def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Return soon after a write adds an outbox event for the workflow, or at ``timeout``.

        May return early (spuriously); the relay always re-lists. This is how the relay
        is woken by writes, also those made by other processes.
        """
        ...

    async def close(self) -> None:
        """Release what the adapter holds (connections, tasks). Idempotent."""
        ...


# --------------------------------------------------------------------------- roles


@runtime_checkable
class Lease(Protocol):
    """Proof of holding a role, valid until ``lost()``."""

    @property
    def role(self) -> str:
        """The role held."""
        ...

    def lost(self) -> bool:
        """True once the holder must stop working under the role."""
        ...

    async def wait_lost(self) -> None:
        """Return when the role is lost (or the lease released)."""
        ...


@runtime_checkable
class RoleScheduler(Protocol):
    """Grants each role to at most one holder at a time, across all instances.

    ``hold(role)`` is an async context manager: entering waits (cancellably) until the
    caller holds the role; exiting releases it. A lease that is renewed remotely is
    renewed well before it expires, and the holder treats it as lost from the local
    deadline of the last renewal it sent, so two holders never overlap as long as
    clocks advance at the same rate.

    When a role is lost the engine cancels the process running under it and, once that
    process has really stopped (a step in a thread finishes first), leaves the block.

    Takeover time, the longest a role stays unheld after its holder dies, is part of each
    adapter's documentation: for ``MemoryRoleScheduler`` it is zero (a released or revoked
    role passes at once to the next waiter, in the order they asked); for lease-based
    adapters it is at most the lease duration plus the waiter's retry interval.
    """

    def hold(self, role: str) -> AbstractAsyncContextManager[Lease]:
        """Hold ``role`` for the duration of the ``async with`` block."""
        ...

    async def close(self) -> None:
        """Release every role held and what the adapter holds. Idempotent."""
        ...


# --------------------------------------------------------------------------- timeouts


@dataclass(frozen=True, slots=True)
class TimeoutRecord:
    """A timeout waiting for ``expire_at`` on a run at ``status``.

    ``record_version`` is the run's version when the timeout was created and ``index`` which
    of the status's timeouts (in ``add_timeout`` order) it belongs to: together with the
    run ID and status they identify it, so creating it twice is harmless.
    """

    id: int
    workflow_name: str
    foreign_id: str
    run_id: str
    status: int
    expire_at: datetime
    created_at: datetime
    completed: bool = False
    record_version: int = 0
    index: int = 0


@runtime_checkable
class TimeoutStore(Protocol):
    """Keeps timeouts for the timeout processes of workflows."""

    async def create(
        self,
        workflow_name: str,
        foreign_id: str,
        run_id: str,
        status: int,
        expire_at: datetime,
        *,
        created_at: datetime,
        record_version: int = 0,
        index: int = 0,
    ) -> int:
        """Insert a timeout and return its ID (IDs increase from 1 per store).

        Idempotent: if a timeout with the same workflow, run ID, status, record version and
        index exists (completed or not), nothing is inserted and its ID is returned.
        """
        ...

    async def complete(self, id: int) -> None:
        """Mark as completed (it no longer fires). Raises ``TimeoutNotFound``."""
        ...

    async def cancel(self, id: int) -> None:
        """Remove. Raises ``TimeoutNotFound``."""
        ...

    async def list(self, workflow_name: str) -> Sequence[TimeoutRecord]:
        """Uncompleted timeouts of the workflow, in ID order."""
        ...

    async def list_valid(
        self, workflow_name: str, status: int, now: datetime
    ) -> Sequence[TimeoutRecord]:
        """Uncompleted timeouts of the status that are due: ``expire_at <= now`` (inclusive),
        in ID order."""
        ...

    async def next_expiry(self, workflow_name: str, status: int) -> datetime | None:
        """The earliest ``expire_at`` of the status's uncompleted timeouts, if any."""
        ...

    async def wait_for_insert(self, workflow_name: str, timeout: float) -> None:
        """Return soon after a timeout is created for the workflow, or at ``timeout`` seconds.

        May return early; the poller always re-reads. Lets a sleeping poller learn of a
        timeout due sooner than the one it sleeps for, also across processes.
        """
        ...

    async def close(self) -> None:
        """Release what the adapter holds (connections, tasks). Idempotent."""
        ...


# --------------------------------------------------------------------------- logging


@runtime_checkable
class Logger(Protocol):
    """Where the engine reports what it cannot return to a caller."""

    def debug(self, msg: str, **meta: object) -> None:
        """Detail for debugging; the engine calls it only in debug mode."""
        ...

    def error(self, msg: str, exc: BaseException | None = None, **meta: object) -> None:
        """A failure in a background process (it will be retried)."""
        ...
