"""The conformance suites catch broken adapters (and pass correct ones) in the same harness.

Each broken variant is a memory adapter with a method or two overridden to break one
rule. The harness writes a test module subclassing the suite with that adapter into a
``pytester`` directory, runs pytest on it in-process, and checks which suite cases
failed. The same harness run on the correct memory adapters must report no failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from unittest import mock

import pytest

import conveyor.adapters._listing
import conveyor.adaptertest
from conveyor import AdapterError, ConnectorEvent, WorkflowError
from conveyor.abc import (
    ConnectorConstructor,
    DefinitionRecord,
    Delivery,
    Event,
    Failure,
    Order,
    OutgoingEvent,
    Record,
    RecordFilter,
    RecordWrite,
    RoleScheduler,
    RunPage,
    RunQuery,
    TailBatch,
    TimeoutRecord,
)
from conveyor.abc.kit import AckTracker
from conveyor.adapters.memory import (
    MemoryConnector,
    MemoryConnectorConsumer,
    MemoryEventReceiver,
    MemoryEventSender,
    MemoryEventStreamer,
    MemoryLease,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from conveyor.adapters.memory._streamer import MemoryTail, _Topic
from conveyor.adaptertest import ConnectorMaker, SchedulerFactory, StoreAndStreamer

# --------------------------------------------------------------------------- broken stores


class StoreWithoutCompareAndSet(MemoryRecordStore):
    """Ignores ``expected_version``: every write wins (insert or update alike)."""

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        stored = self._records.get(write.record.run_id)
        expected = 0 if stored is None else stored.version
        return super()._apply(dataclasses.replace(write, expected_version=expected))


class StoreWithoutForeignIdChecks(MemoryRecordStore):
    """Keeps and finds any string as a foreign ID (a lone surrogate, NUL, any length), as
    a dict does: the limits other backends have are not checked."""

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        with _foreign_ids_unchecked():
            return super()._apply(write)

    async def latest(self, workflow_name: str, foreign_id: str) -> Record:
        with _foreign_ids_unchecked():  # the memory store's latest never yields
            return await super().latest(workflow_name, foreign_id)

    async def list(
        self,
        workflow_name: str = "",
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = Order.ASC,
        filter: RecordFilter | None = None,
    ) -> Sequence[Record]:
        with _foreign_ids_unchecked():
            return await super().list(
                workflow_name, offset=offset, limit=limit, order=order, filter=filter
            )


def _foreign_ids_unchecked() -> AbstractContextManager[object]:
    return mock.patch.multiple(
        "conveyor.adapters.memory._record_store",
        check_foreign_id=lambda foreign_id: foreign_id,
        invalid_foreign_id=lambda foreign_id: None,
    )


# --------------------------------------------------------------------------- broken streamers


class _StreamerWithReceiverType(MemoryEventStreamer):
    """A memory streamer that hands out receivers of a (broken) subclass."""

    receiver_type: type[MemoryEventReceiver] = MemoryEventReceiver

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> MemoryEventReceiver:
        log = self._topic(topic)
        cursor = self._cursor(topic, name)
        if cursor is None:
            cursor = len(log.events) if stream_from_latest else 0
        return self.receiver_type(self, topic, name, log, cursor)


class StreamerIgnoringAcks(MemoryEventStreamer):
    """Acknowledgements never reach the stored cursor."""

    def _commit(self, topic: str, name: str, position: int) -> None:
        pass


class _CommitOnRecvReceiver(MemoryEventReceiver):
    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        events = await super().recv(max_events)
        self._streamer._commit(self._topic_name, self._name, self._next)
        return events


class StreamerCommittingOnRecv(_StreamerWithReceiverType):
    """The cursor advances when events are handed out, not when they are acknowledged."""

    receiver_type = _CommitOnRecvReceiver


class StreamerWithOneSharedCursor(MemoryEventStreamer):
    """One cursor per topic, whatever the receiver's name."""

    def _cursor(self, topic: str, name: str) -> int | None:
        return super()._cursor(topic, "")

    def _commit(self, topic: str, name: str, position: int) -> None:
        super()._commit(topic, "", position)


class StreamerDeclaringPerEventDelivery(MemoryEventStreamer):
    """Declares a broker's per-event profile, but keeps a table log's cursor."""

    delivery = Delivery.PER_EVENT


class StreamerWithoutADeliveryProfile(MemoryEventStreamer):
    """Declares its profile as a bare string instead of a ``Delivery``."""

    delivery = "cursor"  # type: ignore[assignment]


class _LatestAtFirstRecvReceiver(MemoryEventReceiver):
    from_latest = False

    async def recv(self, max_events: int = 1) -> Sequence[Event]:
        if self.from_latest:
            self.from_latest = False
            self._next = len(self._log.events)
            self._acks = AckTracker(self._next)
        return await super().recv(max_events)


class StreamerFixingLatestAtFirstRecv(MemoryEventStreamer):
    """``stream_from_latest`` takes the position at the first ``recv``, not at ``new_receiver``."""

    async def new_receiver(
        self,
        topic: str,
        name: str,
        *,
        stream_from_latest: bool = False,
        poll_interval: float | None = None,
    ) -> MemoryEventReceiver:
        log = self._topic(topic)
        cursor = self._cursor(topic, name)
        receiver = _LatestAtFirstRecvReceiver(self, topic, name, log, cursor or 0)
        receiver.from_latest = stream_from_latest and cursor is None
        return receiver


class _CloseOnceReceiver(MemoryEventReceiver):
    async def close(self) -> None:
        if self._closed:
            raise AdapterError("receiver already closed")
        await super().close()


class StreamerWhoseReceiversCloseOnce(_StreamerWithReceiverType):
    """A receiver's second ``close()`` raises."""

    receiver_type = _CloseOnceReceiver


class _CloseOnceSender(MemoryEventSender):
    async def close(self) -> None:
        if self._closed:
            raise AdapterError("sender already closed")
        await super().close()


class StreamerWhoseSendersCloseOnce(MemoryEventStreamer):
    """A sender's second ``close()`` raises."""

    async def new_sender(self, topic: str) -> MemoryEventSender:
        return _CloseOnceSender(self, topic)


# --------------------------------------------------------------------------- broken schedulers


class SchedulerWithoutExclusion(MemoryRoleScheduler):
    """Grants every ``hold`` at once."""

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[MemoryLease]:
        lease = MemoryLease(role)
        try:
            yield lease
        finally:
            lease._lost.set()


class SchedulerWithUncancellableWait(MemoryRoleScheduler):
    """Swallows cancellation while waiting for a role."""

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[MemoryLease]:
        lock = self._locks.setdefault(role, asyncio.Lock())
        while True:
            try:
                await lock.acquire()
                break
            except asyncio.CancelledError:
                continue  # the bug under test
        lease = MemoryLease(role)
        self._holders[role] = lease
        try:
            yield lease
        finally:
            self._release(lease)


class SchedulerNeverReleasing(MemoryRoleScheduler):
    """Marks the lease lost on exit but keeps the role locked."""

    def _release(self, lease: MemoryLease) -> None:
        lease._lost.set()


class SchedulerMisreadingHeldRolesWhenItLooks(MemoryRoleScheduler):
    """A poller's bug: each ``hold`` call is a look at the roles that misreads every held
    role as free, so every waiter at that moment is granted its role too. No time passing
    shows it; only a later look does."""

    def __init__(self) -> None:
        super().__init__()
        self._look = asyncio.Event()

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[MemoryLease]:
        look, self._look = self._look, asyncio.Event()
        look.set()  # this call looks: the waiters so far take their roles, held or not
        lock = self._locks.setdefault(role, asyncio.Lock())
        acquire = asyncio.ensure_future(lock.acquire())
        misread = asyncio.ensure_future(self._look.wait())
        try:
            await asyncio.wait({acquire, misread}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            misread.cancel()
            if not acquire.done():
                acquire.cancel()
        locked = acquire.done() and not acquire.cancelled()
        lease = MemoryLease(role)
        try:
            yield lease
        finally:
            lease._lost.set()
            if locked:
                lock.release()


def _shared(scheduler_type: type[MemoryRoleScheduler]) -> Callable[[], SchedulerFactory]:
    def build() -> SchedulerFactory:
        scheduler = scheduler_type()

        async def make(n: int) -> Sequence[RoleScheduler]:
            return [scheduler] * n

        return make

    return build


# --------------------------------------------------------------------------- broken timeout stores


class TimeoutStoreWithExclusiveBoundary(MemoryTimeoutStore):
    """``list_valid`` is ``expire_at < now`` (luno's sqltimeout), not ``<=``."""

    async def list_valid(
        self, workflow_name: str, status: int, now: datetime
    ) -> Sequence[TimeoutRecord]:
        due = await super().list_valid(workflow_name, status, now)
        return [t for t in due if t.expire_at < now]


class TimeoutStoreCreatingDuplicates(MemoryTimeoutStore):
    """``create`` always inserts: a repeated create makes a second timeout."""

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
        self._keys.clear()
        return await super().create(
            workflow_name,
            foreign_id,
            run_id,
            status,
            expire_at,
            created_at=created_at,
            record_version=record_version,
            index=index,
        )


class TimeoutStoreIgnoringUnknownCancels(MemoryTimeoutStore):
    """``cancel`` of an unknown ID silently succeeds."""

    async def cancel(self, id: int) -> None:
        self._timeouts.pop(id, None)


class TimeoutStoreListingCompleted(MemoryTimeoutStore):
    """``list`` includes completed timeouts (luno's memtimeoutstore)."""

    async def list(self, workflow_name: str) -> Sequence[TimeoutRecord]:
        return [t for t in self._timeouts.values() if t.workflow_name == workflow_name]


# --------------------------------------------------------------------------- broken connectors


class _ConsumerIgnoringAcks(MemoryConnectorConsumer):
    async def ack(self, event: ConnectorEvent) -> None:
        self._handed.pop(id(event), None)  # accepted, but the cursor never moves


class ConnectorIgnoringAcks(MemoryConnector):
    """Acknowledgements never reach the stored cursor."""

    async def make(self, name: str) -> MemoryConnectorConsumer:
        return _ConsumerIgnoringAcks(self, name, self._cursors.get(name, 0))


class ConnectorWithOneSharedCursor(MemoryConnector):
    """One cursor for every consumer, whatever its name."""

    async def make(self, name: str) -> MemoryConnectorConsumer:
        return await super().make("")


class _ConsumerPendingZero(MemoryConnectorConsumer):
    def pending(self) -> int:
        return 0


class ConnectorWhosePendingIsAlwaysZero(MemoryConnector):
    """Its consumers report being caught up, however many events wait."""

    async def make(self, name: str) -> MemoryConnectorConsumer:
        return _ConsumerPendingZero(self, name, self._cursors.get(name, 0))


class _ConsumerPendingOne(MemoryConnectorConsumer):
    def pending(self) -> int:
        return 1


class ConnectorWhosePendingIsAlwaysOne(MemoryConnector):
    """Its consumers never report being caught up."""

    async def make(self, name: str) -> MemoryConnectorConsumer:
        return _ConsumerPendingOne(self, name, self._cursors.get(name, 0))


def _maker(connector_type: type[MemoryConnector]) -> Callable[[], ConnectorMaker]:
    def build() -> ConnectorMaker:
        async def make(events: Sequence[ConnectorEvent]) -> ConnectorConstructor:
            return connector_type(events)

        return make

    return build


# --------------------------------------------------------------------------- broken closes


class _ClosesOnce:
    """Mixed in before a memory adapter: its second ``close()`` raises."""

    closes = 0

    async def close(self) -> None:
        self.closes += 1
        if self.closes > 1:
            raise AdapterError(f"{type(self).__name__} already closed")


class StreamerClosingOnce(_ClosesOnce, MemoryEventStreamer):
    """The streamer's second ``close()`` raises."""


class RecordStoreClosingOnce(_ClosesOnce, MemoryRecordStore):
    """The record store's second ``close()`` raises."""


class SchedulerClosingOnce(_ClosesOnce, MemoryRoleScheduler):
    """The role scheduler's second ``close()`` raises."""


class ConnectorClosingOnce(_ClosesOnce, MemoryConnector):
    """The connector's second ``close()`` raises."""


class TimeoutStoreClosingOnce(_ClosesOnce, MemoryTimeoutStore):
    """The timeout store's second ``close()`` raises."""


# --------------------------------------------------------------------------- broken ReportsPending


class _PendingAlwaysZeroReceiver(MemoryEventReceiver):
    def pending(self) -> int:
        return 0


class StreamerWhosePendingIsAlwaysZero(_StreamerWithReceiverType):
    """Receivers always claim to be caught up."""

    receiver_type = _PendingAlwaysZeroReceiver


class _PendingAlwaysOneReceiver(MemoryEventReceiver):
    def pending(self) -> int:
        return 1


class StreamerWhosePendingIsAlwaysOne(_StreamerWithReceiverType):
    """Receivers never claim to be caught up."""

    receiver_type = _PendingAlwaysOneReceiver


class _PendingCountsUnackedReceiver(MemoryEventReceiver):
    def pending(self) -> int:
        return len(self._log.events) - self._acks.committed


class StreamerWhosePendingCountsUnacked(_StreamerWithReceiverType):
    """``pending()`` counts events not yet acknowledged instead of not yet handed out."""

    receiver_type = _PendingCountsUnackedReceiver


class _PendingRaisesWhenClosedReceiver(MemoryEventReceiver):
    def pending(self) -> int:
        if self._closed:
            raise AdapterError(f"receiver {self._name!r} is closed")
        return super().pending()


class StreamerWhosePendingRaisesWhenClosed(_StreamerWithReceiverType):
    """A closed receiver's ``pending()`` raises."""

    receiver_type = _PendingRaisesWhenClosedReceiver


# --------------------------------------------------------------------------- broken TailsTopics


class _StreamerWithTailType(MemoryEventStreamer):
    """A memory streamer that hands out tails of a (broken) subclass."""

    tail_type: type[MemoryTail] = MemoryTail

    async def tail(self, topic: str) -> MemoryTail:
        log = self._topic(topic)
        return self.tail_type(log, len(log.events))


class StreamerTailingFromTheStart(MemoryEventStreamer):
    """A tail starts at the beginning of the topic's log instead of its end."""

    async def tail(self, topic: str) -> MemoryTail:
        return MemoryTail(self._topic(topic), 0)


class _PositionedAtFirstReadTail(MemoryTail):
    _positioned = False

    async def __anext__(self) -> TailBatch:
        if not self._positioned:
            self._positioned = True
            self._next = len(self._log.events)
        return await super().__anext__()


class StreamerPositioningTailsAtTheirFirstRead(_StreamerWithTailType):
    """A tail takes the topic's end at its first read, not when ``tail()`` returns."""

    tail_type = _PositionedAtFirstReadTail


class _SharedPositionTail(MemoryTail):
    def __init__(self, log: _Topic, position: list[int]) -> None:
        self._position = position
        super().__init__(log, position[0])

    @property
    def _next(self) -> int:
        return self._position[0]

    @_next.setter
    def _next(self, value: int) -> None:
        self._position[0] = value


class StreamerWhoseTailsShareOnePosition(MemoryEventStreamer):
    """The tails of a topic share one position: each event goes to one of them only."""

    def __init__(self) -> None:
        super().__init__()
        self._positions: dict[str, list[int]] = {}

    async def tail(self, topic: str) -> MemoryTail:
        log = self._topic(topic)
        return _SharedPositionTail(log, self._positions.setdefault(topic, [len(log.events)]))


class _CloseLeavingTheReadWaitingTail(MemoryTail):
    async def close(self) -> None:
        self._closed = True  # the pending read is not woken


class StreamerWhoseTailCloseLeavesAReadWaiting(_StreamerWithTailType):
    """A tail's ``close()`` ends later reads but not one that is waiting."""

    tail_type = _CloseLeavingTheReadWaitingTail


class _CloseOnceTail(MemoryTail):
    async def close(self) -> None:
        if self._closed:
            raise AdapterError("tail already closed")
        await super().close()


class StreamerWhoseTailsCloseOnce(_StreamerWithTailType):
    """A tail's second ``close()`` raises."""

    tail_type = _CloseOnceTail


# --------------------------------------------------------------------------- PublishesEvents


class PublishingStore(MemoryRecordStore):
    """A memory store that publishes like ``PostgresRecordStore(events=...)``: each applied
    write's event goes to ``target``'s log (as the relay would send it), none to the outbox.

    Correct when ``publishes_to`` is ``target`` (the default); the variants below break it.
    """

    def __init__(
        self, target: MemoryEventStreamer, *, named: MemoryEventStreamer | None = None
    ) -> None:
        super().__init__()
        self._target = target
        self._named = target if named is None else named

    @property
    def publishes_to(self) -> MemoryEventStreamer:
        return self._named

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        err = super()._apply(write)
        if err is None:
            self._outbox[write.record.workflow_name].pop(write.outbox.id)
            self._publish(write)
        return err

    def _publish(self, write: RecordWrite) -> None:
        event = write.outbox
        self._target._append(event.topic, [OutgoingEvent(event.run_id, event.type, event.headers)])


def _publishing(
    store_type: type[PublishingStore] = PublishingStore,
) -> Callable[[], StoreAndStreamer]:
    def build() -> StoreAndStreamer:
        streamer = MemoryEventStreamer()
        return StoreAndStreamer(store_type(streamer), streamer)

    return build


def _naming_another_streamer() -> StoreAndStreamer:
    """Publishes to the streamer it is handed with, but names another one."""
    streamer = MemoryEventStreamer()
    return StoreAndStreamer(PublishingStore(streamer, named=MemoryEventStreamer()), streamer)


def _publishing_to_another_streamer() -> StoreAndStreamer:
    """Names the streamer it is handed with, but publishes to another one."""
    streamer = MemoryEventStreamer()
    return StoreAndStreamer(PublishingStore(MemoryEventStreamer(), named=streamer), streamer)


class PublishingStoreKeepingItsOutbox(PublishingStore):
    """Publishes each event and keeps it in the outbox too (the relay would send it twice)."""

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        err = MemoryRecordStore._apply(self, write)
        if err is None:
            self._publish(write)
        return err


class PublishingStoreSendingTheForeignId(PublishingStore):
    """Publishes the run's foreign ID where the relay sends its run ID."""

    def _publish(self, write: RecordWrite) -> None:
        event = write.outbox
        self._target._append(
            event.topic, [OutgoingEvent(write.record.foreign_id, event.type, event.headers)]
        )


class PublishingStoreBeforeCompareAndSet(PublishingStore):
    """Publishes every write's event, also of writes the compare-and-set refuses."""

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        self._publish(write)
        err = MemoryRecordStore._apply(self, write)
        if err is None:
            self._outbox[write.record.workflow_name].pop(write.outbox.id)
        return err


# ------------------------------------------------------------------------ broken store capabilities


class StoreKeepingOnlyTheLatestSnapshot(MemoryRecordStore):
    """``snapshots`` drops every version but the latest."""

    def snapshots(self, workflow_name: str, foreign_id: str, run_id: str) -> list[Record]:
        return super().snapshots(workflow_name, foreign_id, run_id)[-1:]


class StoreSnapshottingRejectedWrites(MemoryRecordStore):
    """Takes the snapshot before the compare-and-set, so refused writes leave one."""

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        err = super()._apply(write)
        if err is not None:
            self._snapshots.setdefault(write.record.run_id, []).append(write.record)
        return err


class StoreKeepingSnapshotsNewestFirst(MemoryRecordStore):
    """``snapshots`` lists the versions newest first."""

    def snapshots(self, workflow_name: str, foreign_id: str, run_id: str) -> list[Record]:
        return super().snapshots(workflow_name, foreign_id, run_id)[::-1]


class StoreWhoseChangeWaitersNeverWake(MemoryRecordStore):
    """``wait_for_change`` returns only at its timeout, whatever is written."""

    async def wait_for_change(self, timeout: float | None = None) -> None:
        if timeout is None:
            await asyncio.get_running_loop().create_future()
        else:
            await asyncio.sleep(timeout)


class StoreWhoseChangeWaitersIgnoreTheTimeout(MemoryRecordStore):
    """``wait_for_change`` waits for a write however long it takes."""

    async def wait_for_change(self, timeout: float | None = None) -> None:
        await super().wait_for_change(None)


class StoreWhoseBatchesNotifyNobody(MemoryRecordStore):
    """``store_many`` wakes no change waiter."""

    async def store_many(self, writes: Sequence[RecordWrite]) -> Sequence[WorkflowError | None]:
        return [self._apply(write) for write in writes]


class StoreWhoseOutboxSizeNeverDecreases(MemoryRecordStore):
    """``outbox_size`` counts every outbox event ever written, deleted or not."""

    written = 0

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        err = super()._apply(write)
        if err is None:
            self.written += 1
        return err

    def outbox_size(self) -> int:
        return self.written


class StoreWhoseOutboxSizeCountsOneWorkflow(MemoryRecordStore):
    """``outbox_size`` counts the first workflow's outbox only."""

    def outbox_size(self) -> int:
        return next((len(events) for events in self._outbox.values()), 0)


class StoreKeepingStaleFailures(MemoryRecordStore):
    """``record_failure`` keeps a failure of any stored run, whatever version it names."""

    async def record_failure(self, failure: Failure) -> bool:
        if failure.run_id not in self._records:
            return False
        self._failures.setdefault(failure.run_id, {})[(failure.version, failure.attempt)] = failure
        return True


class StoreBumpingTheVersionOnFailure(MemoryRecordStore):
    """``record_failure`` writes the run: its version goes up by one, as a write's would."""

    async def record_failure(self, failure: Failure) -> bool:
        kept = await super().record_failure(failure)
        if kept:
            stored = self._records[failure.run_id]
            meta = dataclasses.replace(stored.meta, version=stored.version + 1)
            self._records[failure.run_id] = stored.replace(meta=meta)
        return kept


class StoreListingEveryFailureAsDue(MemoryRecordStore):
    """``retries_due`` lists every failure it keeps (of any run, version and process)."""

    async def retries_due(
        self, workflow_name: str, process: str, limit: int = 1000
    ) -> Sequence[Failure]:
        return [f for kept in self._failures.values() for f in kept.values()][:limit]


class StoreWritingHistoryForLostWrites(MemoryRecordStore):
    """Keeps a snapshot (so a history entry) of every write, also of those the
    compare-and-set refuses."""

    def _apply(self, write: RecordWrite) -> WorkflowError | None:
        err = super()._apply(write)
        if err is not None:
            self._snapshots.setdefault(write.record.run_id, []).append(write.record)
        return err


class StoreListingByOffset(MemoryRecordStore):
    """Pages by offset: its cursor counts the runs already listed, so a run created
    meanwhile (newest first) shifts the pages after it."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        if cursor is not None and not cursor.isdigit():
            raise AdapterError("bad cursor")
        start = int(cursor or 0)
        every = await super().list_runs(query, limit=1_000_000)
        page = list(every.records[start : start + limit])
        more = start + limit < len(every.records)
        return RunPage(page, str(start + limit) if more else None)


class StoreIgnoringThePrefix(MemoryRecordStore):
    """Lists and counts as if no foreign ID prefix were asked for."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        query = dataclasses.replace(query, foreign_id_prefix=None)
        return await super().list_runs(query, limit=limit, cursor=cursor)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        return await super().count_runs(dataclasses.replace(query, foreign_id_prefix=None), cap=cap)


class StoreMatchingThePrefixAsALikePattern(MemoryRecordStore):
    """Matches a foreign ID prefix and a run ID prefix each as an unescaped SQL
    ``LIKE 'prefix%'``."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        page = await super().list_runs(
            dataclasses.replace(query, foreign_id_prefix=None, run_id_prefix=None),
            limit=1_000_000,
        )
        records = [
            r
            for r in page.records
            if _like(query.foreign_id_prefix, r.foreign_id) and _like(query.run_id_prefix, r.run_id)
        ]
        return RunPage(records[:limit])


def _like(prefix: str | None, text: str) -> bool:
    """Whether ``text`` matches ``LIKE 'prefix%'`` (no escapes); any text for no prefix."""
    if not prefix:
        return True
    pattern = "".join("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in prefix)
    return re.match(pattern, text, re.DOTALL) is not None


class StoreIgnoringTheRunIdPrefix(MemoryRecordStore):
    """Lists and counts as if no run ID prefix were asked for."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        query = dataclasses.replace(query, run_id_prefix=None)
        return await super().list_runs(query, limit=limit, cursor=cursor)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        return await super().count_runs(dataclasses.replace(query, run_id_prefix=None), cap=cap)


class StoreMatchingTheRunIdPrefixOnTheForeignId(MemoryRecordStore):
    """Takes a run ID prefix for a foreign ID prefix (the other column's range)."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        return await super().list_runs(_on_the_foreign_id(query), limit=limit, cursor=cursor)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        return await super().count_runs(_on_the_foreign_id(query), cap=cap)


def _on_the_foreign_id(query: RunQuery) -> RunQuery:
    if query.run_id_prefix is None:
        return query
    return dataclasses.replace(query, run_id_prefix=None, foreign_id_prefix=query.run_id_prefix)


class StoreFailingOnARunIdPrefixNoStoreHolds(MemoryRecordStore):
    """Sends a run ID prefix with a NUL or a lone surrogate to the database as it is,
    which refuses it (as PostgreSQL's driver does)."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        _refuse_unstorable(query)
        return await super().list_runs(query, limit=limit, cursor=cursor)

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        _refuse_unstorable(query)
        return await super().count_runs(query, cap=cap)


def _refuse_unstorable(query: RunQuery) -> None:
    prefix = query.run_id_prefix or ""
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        raise AdapterError(f"cannot encode {prefix!r} in UTF-8") from None
    if "\x00" in prefix:
        raise AdapterError(f"invalid byte sequence for encoding UTF8: 0x00 in {prefix!r}")


class StoreOrderingTiesByInsertion(MemoryRecordStore):
    """Orders runs created in one instant by insertion, not by run ID (and pages by it)."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        every = [r for r in self.all_records() if conveyor.adapters._listing.matches(query, r)]
        if query.newest_first:
            every.reverse()
        return RunPage(every[:limit])


class StoreCountingPastTheCap(MemoryRecordStore):
    """``count_runs`` ignores its cap."""

    async def count_runs(self, query: RunQuery, *, cap: int = 10_000) -> int:
        return await super().count_runs(query, cap=1_000_000)


class StoreWithAnExclusiveCreatedAfter(MemoryRecordStore):
    """Leaves out runs created exactly at ``created_after``."""

    async def list_runs(
        self, query: RunQuery, *, limit: int = 50, cursor: str | None = None
    ) -> RunPage:
        page = await super().list_runs(query, limit=limit, cursor=cursor)
        after = query.created_after
        return RunPage(
            [r for r in page.records if after is None or r.created_at > after], page.cursor
        )


class StoreAddingAVersionPerRegistration(MemoryRecordStore):
    """Every registration is a new version, whatever its hash."""

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        return await super().register_definition(workflow_name, f"{hash}-{at}", document, at)


class StoreReusingAnyVersionOfTheHash(MemoryRecordStore):
    """Returns any earlier version of the same hash instead of a new one."""

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        for kept in self._definitions.get(workflow_name, ()):
            if kept.hash == hash:
                return kept
        return await super().register_definition(workflow_name, hash, document, at)


class StoreRegisteringWithoutAtomicity(MemoryRecordStore):
    """Reads the latest version, lets other tasks run, then appends (no compare)."""

    async def register_definition(
        self, workflow_name: str, hash: str, document: str, at: datetime
    ) -> DefinitionRecord:
        kept = self._definitions.setdefault(workflow_name, [])
        if kept and kept[-1].hash == hash:
            return kept[-1]
        version = len(kept) + 1
        await asyncio.sleep(0)  # another registration reads the same latest version here
        record = DefinitionRecord(workflow_name, version, hash, document, at)
        kept.append(record)
        return record


class StoreListingVersionsNewestFirst(MemoryRecordStore):
    """``definition_versions`` lists the newest first."""

    async def definition_versions(self, workflow_name: str) -> Sequence[DefinitionRecord]:
        return list(await super().definition_versions(workflow_name))[::-1]


class StorePinningTheLatestLocation(MemoryRecordStore):
    """Every pin records its location, recorded or not (a repin, in effect)."""

    async def pin_event_location(self, location: str) -> str:
        await super().repin_event_location(location)
        return location


class StorePinningWithoutAtomicity(MemoryRecordStore):
    """Reads whether a location is recorded, lets other tasks run, then records its own."""

    async def pin_event_location(self, location: str) -> str:
        if self._event_location is not None:
            return self._event_location
        await asyncio.sleep(0)  # another first pin reads "none recorded" here
        self._event_location = location
        return location


class StoreIgnoringRepins(MemoryRecordStore):
    """A repin records nothing."""

    async def repin_event_location(self, location: str) -> None:
        pass


# --------------------------------------------------------------------------- the harness


@dataclass(frozen=True)
class Variant:
    """An adapter under test: the suite, its fixture, and how to build the fixture's value."""

    suite: str
    fixture: str
    build: Callable[[], object]
    settings: Mapping[str, float] = dataclasses.field(default_factory=dict)


_STORE = {"wait_timeout": 0.5}
_STREAM = {"recv_timeout": 0.3, "workflow_timeout": 2.0}
_ROLES = {"wait_timeout": 0.3}
_TIMEOUTS = {"wait_timeout": 0.5}
_CONNECTORS = {"wait_timeout": 0.3, "workflow_timeout": 2.0}
_PENDING = {"recv_timeout": 0.3}
_PUBLISHED = {"recv_timeout": 0.3}
_CAPABILITY = {"wait_timeout": 0.3}
_TAILS = {"recv_timeout": 0.3}

VARIANTS: dict[str, Variant] = {
    # Correct adapters: the harness must report no failure for them.
    "memory-record-store": Variant("RecordStoreSuite", "store", MemoryRecordStore, _STORE),
    "memory-streamer": Variant("EventStreamerSuite", "streamer", MemoryEventStreamer, _STREAM),
    "memory-role-scheduler": Variant(
        "RoleSchedulerSuite", "make_schedulers", _shared(MemoryRoleScheduler), _ROLES
    ),
    "memory-timeout-store": Variant(
        "TimeoutStoreSuite", "timeout_store", MemoryTimeoutStore, _TIMEOUTS
    ),
    "memory-connector": Variant(
        "ConnectorSuite", "make_connector", _maker(MemoryConnector), _CONNECTORS
    ),
    # Correct capabilities (the publishing store is a memory double of PostgreSQL's).
    "memory-connector-reports-pending": Variant(
        "ConnectorReportsPendingSuite", "make_connector", _maker(MemoryConnector), _CONNECTORS
    ),
    "memory-receivers-report-pending": Variant(
        "ReportsPendingSuite", "streamer", MemoryEventStreamer, _PENDING
    ),
    "memory-publishing-store": Variant(
        "PublishesEventsSuite", "store_and_streamer", _publishing(), _PUBLISHED
    ),
    "memory-store-keeps-snapshots": Variant(
        "KeepsSnapshotsSuite", "store", MemoryRecordStore, _CAPABILITY
    ),
    "memory-store-notifies-changes": Variant(
        "NotifiesChangesSuite", "store", MemoryRecordStore, _CAPABILITY
    ),
    "memory-store-reports-outbox": Variant(
        "ReportsOutboxSuite", "store", MemoryRecordStore, _CAPABILITY
    ),
    "memory-store-records-failures": Variant(
        "RecordsFailuresSuite", "store", MemoryRecordStore, _CAPABILITY
    ),
    "memory-store-keeps-history": Variant(
        "KeepsHistorySuite", "store", MemoryRecordStore, _CAPABILITY
    ),
    "memory-store-lists-runs": Variant("ListsRunsSuite", "store", MemoryRecordStore, _CAPABILITY),
    "memory-store-keeps-definitions": Variant(
        "KeepsDefinitionsSuite", "store", MemoryRecordStore, _CAPABILITY
    ),
    "memory-store-pins-event-location": Variant(
        "PinsEventLocationSuite", "store", MemoryRecordStore, _CAPABILITY
    ),
    "memory-tails": Variant("TailsTopicsSuite", "streamer", MemoryEventStreamer, _TAILS),
    # Broken adapters: the suite must fail them.
    "store-without-compare-and-set": Variant(
        "RecordStoreSuite", "store", StoreWithoutCompareAndSet, _STORE
    ),
    "store-without-foreign-id-checks": Variant(
        "RecordStoreSuite", "store", StoreWithoutForeignIdChecks, _STORE
    ),
    "streamer-ignoring-acks": Variant(
        "EventStreamerSuite", "streamer", StreamerIgnoringAcks, _STREAM
    ),
    "streamer-committing-on-recv": Variant(
        "EventStreamerSuite", "streamer", StreamerCommittingOnRecv, _STREAM
    ),
    "streamer-with-one-shared-cursor": Variant(
        "EventStreamerSuite", "streamer", StreamerWithOneSharedCursor, _STREAM
    ),
    "streamer-declaring-per-event-with-a-cursor": Variant(
        "EventStreamerSuite", "streamer", StreamerDeclaringPerEventDelivery, _STREAM
    ),
    "streamer-without-a-delivery-profile": Variant(
        "EventStreamerSuite", "streamer", StreamerWithoutADeliveryProfile, _STREAM
    ),
    "streamer-fixing-latest-at-first-recv": Variant(
        "EventStreamerSuite", "streamer", StreamerFixingLatestAtFirstRecv, _STREAM
    ),
    "receiver-close-raises-the-second-time": Variant(
        "EventStreamerSuite", "streamer", StreamerWhoseReceiversCloseOnce, _STREAM
    ),
    "sender-close-raises-the-second-time": Variant(
        "EventStreamerSuite", "streamer", StreamerWhoseSendersCloseOnce, _STREAM
    ),
    "scheduler-without-exclusion": Variant(
        "RoleSchedulerSuite", "make_schedulers", _shared(SchedulerWithoutExclusion), _ROLES
    ),
    "scheduler-with-uncancellable-wait": Variant(
        "RoleSchedulerSuite", "make_schedulers", _shared(SchedulerWithUncancellableWait), _ROLES
    ),
    "scheduler-never-releasing": Variant(
        "RoleSchedulerSuite", "make_schedulers", _shared(SchedulerNeverReleasing), _ROLES
    ),
    "scheduler-misreading-held-roles-when-it-looks": Variant(
        "RoleSchedulerSuite",
        "make_schedulers",
        _shared(SchedulerMisreadingHeldRolesWhenItLooks),
        _ROLES,
    ),
    "timeout-store-with-exclusive-boundary": Variant(
        "TimeoutStoreSuite", "timeout_store", TimeoutStoreWithExclusiveBoundary, _TIMEOUTS
    ),
    "timeout-store-creating-duplicates": Variant(
        "TimeoutStoreSuite", "timeout_store", TimeoutStoreCreatingDuplicates, _TIMEOUTS
    ),
    "timeout-store-ignoring-unknown-cancels": Variant(
        "TimeoutStoreSuite", "timeout_store", TimeoutStoreIgnoringUnknownCancels, _TIMEOUTS
    ),
    "timeout-store-listing-completed": Variant(
        "TimeoutStoreSuite", "timeout_store", TimeoutStoreListingCompleted, _TIMEOUTS
    ),
    "connector-ignoring-acks": Variant(
        "ConnectorSuite", "make_connector", _maker(ConnectorIgnoringAcks), _CONNECTORS
    ),
    "connector-with-one-shared-cursor": Variant(
        "ConnectorSuite", "make_connector", _maker(ConnectorWithOneSharedCursor), _CONNECTORS
    ),
    "connector-close-raises-the-second-time": Variant(
        "ConnectorSuite", "make_connector", _maker(ConnectorClosingOnce), _CONNECTORS
    ),
    "streamer-close-raises-the-second-time": Variant(
        "EventStreamerSuite", "streamer", StreamerClosingOnce, _STREAM
    ),
    "record-store-close-raises-the-second-time": Variant(
        "RecordStoreSuite", "store", RecordStoreClosingOnce, _STORE
    ),
    "role-scheduler-close-raises-the-second-time": Variant(
        "RoleSchedulerSuite", "make_schedulers", _shared(SchedulerClosingOnce), _ROLES
    ),
    "timeout-store-close-raises-the-second-time": Variant(
        "TimeoutStoreSuite", "timeout_store", TimeoutStoreClosingOnce, _TIMEOUTS
    ),
    "connector-pending-always-zero": Variant(
        "ConnectorReportsPendingSuite",
        "make_connector",
        _maker(ConnectorWhosePendingIsAlwaysZero),
        _CONNECTORS,
    ),
    "connector-pending-always-one": Variant(
        "ConnectorReportsPendingSuite",
        "make_connector",
        _maker(ConnectorWhosePendingIsAlwaysOne),
        _CONNECTORS,
    ),
    "pending-always-zero": Variant(
        "ReportsPendingSuite", "streamer", StreamerWhosePendingIsAlwaysZero, _PENDING
    ),
    "pending-always-one": Variant(
        "ReportsPendingSuite", "streamer", StreamerWhosePendingIsAlwaysOne, _PENDING
    ),
    "pending-counting-unacknowledged-events": Variant(
        "ReportsPendingSuite", "streamer", StreamerWhosePendingCountsUnacked, _PENDING
    ),
    "pending-raising-when-closed": Variant(
        "ReportsPendingSuite", "streamer", StreamerWhosePendingRaisesWhenClosed, _PENDING
    ),
    "store-naming-another-streamer": Variant(
        "PublishesEventsSuite", "store_and_streamer", _naming_another_streamer, _PUBLISHED
    ),
    "store-publishing-to-another-streamer": Variant(
        "PublishesEventsSuite", "store_and_streamer", _publishing_to_another_streamer, _PUBLISHED
    ),
    "store-publishing-and-keeping-its-outbox": Variant(
        "PublishesEventsSuite",
        "store_and_streamer",
        _publishing(PublishingStoreKeepingItsOutbox),
        _PUBLISHED,
    ),
    "store-publishing-the-foreign-id": Variant(
        "PublishesEventsSuite",
        "store_and_streamer",
        _publishing(PublishingStoreSendingTheForeignId),
        _PUBLISHED,
    ),
    "store-publishing-before-compare-and-set": Variant(
        "PublishesEventsSuite",
        "store_and_streamer",
        _publishing(PublishingStoreBeforeCompareAndSet),
        _PUBLISHED,
    ),
    "snapshots-dropping-versions": Variant(
        "KeepsSnapshotsSuite", "store", StoreKeepingOnlyTheLatestSnapshot, _CAPABILITY
    ),
    "snapshots-of-rejected-writes": Variant(
        "KeepsSnapshotsSuite", "store", StoreSnapshottingRejectedWrites, _CAPABILITY
    ),
    "snapshots-newest-first": Variant(
        "KeepsSnapshotsSuite", "store", StoreKeepingSnapshotsNewestFirst, _CAPABILITY
    ),
    "wait-for-change-never-waking": Variant(
        "NotifiesChangesSuite", "store", StoreWhoseChangeWaitersNeverWake, _CAPABILITY
    ),
    "wait-for-change-ignoring-its-timeout": Variant(
        "NotifiesChangesSuite", "store", StoreWhoseChangeWaitersIgnoreTheTimeout, _CAPABILITY
    ),
    "store-many-notifying-nobody": Variant(
        "NotifiesChangesSuite", "store", StoreWhoseBatchesNotifyNobody, _CAPABILITY
    ),
    "outbox-size-never-decreasing": Variant(
        "ReportsOutboxSuite", "store", StoreWhoseOutboxSizeNeverDecreases, _CAPABILITY
    ),
    "outbox-size-of-one-workflow": Variant(
        "ReportsOutboxSuite", "store", StoreWhoseOutboxSizeCountsOneWorkflow, _CAPABILITY
    ),
    "failures-of-stale-versions-kept": Variant(
        "RecordsFailuresSuite", "store", StoreKeepingStaleFailures, _CAPABILITY
    ),
    "failures-bumping-the-version": Variant(
        "RecordsFailuresSuite", "store", StoreBumpingTheVersionOnFailure, _CAPABILITY
    ),
    "retries-due-listing-every-failure": Variant(
        "RecordsFailuresSuite", "store", StoreListingEveryFailureAsDue, _CAPABILITY
    ),
    "history-of-lost-writes": Variant(
        "KeepsHistorySuite", "store", StoreWritingHistoryForLostWrites, _CAPABILITY
    ),
    "runs-listed-by-offset": Variant("ListsRunsSuite", "store", StoreListingByOffset, _CAPABILITY),
    "runs-listed-ignoring-the-prefix": Variant(
        "ListsRunsSuite", "store", StoreIgnoringThePrefix, _CAPABILITY
    ),
    "runs-listed-by-an-unescaped-like": Variant(
        "ListsRunsSuite", "store", StoreMatchingThePrefixAsALikePattern, _CAPABILITY
    ),
    "runs-listed-with-ties-by-insertion": Variant(
        "ListsRunsSuite", "store", StoreOrderingTiesByInsertion, _CAPABILITY
    ),
    "runs-counted-past-the-cap": Variant(
        "ListsRunsSuite", "store", StoreCountingPastTheCap, _CAPABILITY
    ),
    "runs-listed-ignoring-the-run-id-prefix": Variant(
        "ListsRunsSuite", "store", StoreIgnoringTheRunIdPrefix, _CAPABILITY
    ),
    "runs-listed-by-the-run-id-prefix-on-the-foreign-id": Variant(
        "ListsRunsSuite", "store", StoreMatchingTheRunIdPrefixOnTheForeignId, _CAPABILITY
    ),
    "runs-listed-failing-on-a-run-id-prefix-no-store-holds": Variant(
        "ListsRunsSuite", "store", StoreFailingOnARunIdPrefixNoStoreHolds, _CAPABILITY
    ),
    "runs-listed-after-an-exclusive-created-after": Variant(
        "ListsRunsSuite", "store", StoreWithAnExclusiveCreatedAfter, _CAPABILITY
    ),
    "definitions-versioned-per-registration": Variant(
        "KeepsDefinitionsSuite", "store", StoreAddingAVersionPerRegistration, _CAPABILITY
    ),
    "definitions-reusing-any-version-of-the-hash": Variant(
        "KeepsDefinitionsSuite", "store", StoreReusingAnyVersionOfTheHash, _CAPABILITY
    ),
    "definitions-registered-without-atomicity": Variant(
        "KeepsDefinitionsSuite", "store", StoreRegisteringWithoutAtomicity, _CAPABILITY
    ),
    "definition-versions-newest-first": Variant(
        "KeepsDefinitionsSuite", "store", StoreListingVersionsNewestFirst, _CAPABILITY
    ),
    "event-location-pinned-by-the-latest": Variant(
        "PinsEventLocationSuite", "store", StorePinningTheLatestLocation, _CAPABILITY
    ),
    "event-location-pinned-without-atomicity": Variant(
        "PinsEventLocationSuite", "store", StorePinningWithoutAtomicity, _CAPABILITY
    ),
    "event-location-never-repinned": Variant(
        "PinsEventLocationSuite", "store", StoreIgnoringRepins, _CAPABILITY
    ),
    "tail-from-the-start": Variant(
        "TailsTopicsSuite", "streamer", StreamerTailingFromTheStart, _TAILS
    ),
    "tail-positioned-at-its-first-read": Variant(
        "TailsTopicsSuite", "streamer", StreamerPositioningTailsAtTheirFirstRead, _TAILS
    ),
    "tails-sharing-one-position": Variant(
        "TailsTopicsSuite", "streamer", StreamerWhoseTailsShareOnePosition, _TAILS
    ),
    "tail-close-leaving-a-read-waiting": Variant(
        "TailsTopicsSuite", "streamer", StreamerWhoseTailCloseLeavesAReadWaiting, _TAILS
    ),
    "tail-close-raising-the-second-time": Variant(
        "TailsTopicsSuite", "streamer", StreamerWhoseTailsCloseOnce, _TAILS
    ),
}

_INI = """\
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers --strict-config
xfail_strict = true
filterwarnings = error
"""

_MODULE = """\
import sys

import pytest
import pytest_asyncio

from conveyor.adaptertest import {suite}

VARIANT = sys.modules[{module!r}].VARIANTS[{key!r}]


class TestAdapter({suite}):
{settings}
    @{decorator}
    async def {fixture}(self):
        return VARIANT.build()
"""


def run_suite(pytester: pytest.Pytester, key: str, *, mode: str = "auto") -> dict[str, str]:
    """Run the suite on ``VARIANTS[key]``; return each case's outcome by name.

    The outcome is ``passed`` or ``failed`` (the case itself), or ``error`` (setup or
    teardown failed while the case passed).
    """
    variant = VARIANTS[key]
    settings = "".join(f"    {name} = {value!r}\n" for name, value in variant.settings.items())
    decorator = "pytest_asyncio.fixture" if mode == "strict" else "pytest.fixture"
    pytester.makeini(_INI.format(mode=mode))
    pytester.makepyfile(
        test_adapter=_MODULE.format(
            suite=variant.suite,
            module=__name__,
            key=key,
            settings=settings,
            decorator=decorator,
            fixture=variant.fixture,
        )
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    outcomes: dict[str, str] = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        name = report.nodeid.rpartition("::")[2]
        if report.when == "call":
            outcomes[name] = report.outcome
        elif report.failed:
            outcomes.setdefault(name, "error")
    assert outcomes, "the harness collected no suite case"
    return outcomes


def _failed(outcomes: Mapping[str, str]) -> set[str]:
    return {name for name, outcome in outcomes.items() if outcome != "passed"}


@pytest.mark.parametrize("mode", ["auto", "strict"])
@pytest.mark.parametrize(
    "key",
    [
        "memory-record-store",
        "memory-streamer",
        "memory-role-scheduler",
        "memory-timeout-store",
        "memory-connector",
    ],
)
def test_harness_passes_the_correct_memory_adapter(
    pytester: pytest.Pytester, key: str, mode: str
) -> None:
    outcomes = run_suite(pytester, key, mode=mode)

    assert _failed(outcomes) == set()
    assert len(outcomes) >= 7


@pytest.mark.parametrize("mode", ["auto", "strict"])
@pytest.mark.parametrize(
    "key",
    [
        "memory-receivers-report-pending",
        "memory-connector-reports-pending",
        "memory-publishing-store",
        "memory-store-keeps-snapshots",
        "memory-store-notifies-changes",
        "memory-store-reports-outbox",
        "memory-store-records-failures",
        "memory-store-keeps-history",
        "memory-store-lists-runs",
        "memory-store-keeps-definitions",
        "memory-store-pins-event-location",
        "memory-tails",
    ],
)
def test_harness_passes_every_case_of_a_capability_suite_on_a_correct_adapter(
    pytester: pytest.Pytester, key: str, mode: str
) -> None:
    outcomes = run_suite(pytester, key, mode=mode)

    suite = getattr(conveyor.adaptertest, VARIANTS[key].suite)
    cases = {name for name in dir(suite) if name.startswith("test_")}
    assert _failed(outcomes) == set()
    assert set(outcomes) == cases


@pytest.mark.parametrize(
    ("key", "caught_by"),
    [
        pytest.param(
            "store-without-compare-and-set",
            {
                "test_update_with_stale_version_raises_version_conflict",
                "test_update_expecting_a_version_not_yet_stored_raises_version_conflict",
                "test_insert_of_an_existing_run_id_raises_version_conflict",
                "test_update_of_an_unknown_run_raises_version_conflict",
                "test_store_many_returns_an_outcome_per_write_and_applies_the_others",
            },
            id="store-without-compare-and-set",
        ),
        pytest.param(
            "store-without-foreign-id-checks",
            {
                f"test_foreign_ids_no_backend_can_store_are_refused[{case}]"
                for case in (
                    "NUL",
                    "lone high surrogate",
                    "lone low surrogate in text",
                    "one byte too long",
                    "too long in UTF-8",
                )
            },
            id="store-without-foreign-id-checks",
        ),
        pytest.param(
            "streamer-ignoring-acks",
            {
                "test_stream_from_latest_has_no_effect_once_a_cursor_is_committed",
                "test_cursors_are_kept_per_receiver_name",
                "test_acked_events_are_not_redelivered",
                "test_a_reopened_receiver_gets_again_what_its_delivery_profile_says",
                "test_acks_in_any_order_commit_the_whole_run",
            },
            id="streamer-ignoring-acks",
        ),
        pytest.param(
            "streamer-committing-on-recv",
            {
                "test_unacked_events_are_redelivered_to_a_new_receiver_of_the_same_name",
                "test_a_reopened_receiver_gets_again_what_its_delivery_profile_says",
            },
            id="streamer-committing-on-recv",
        ),
        pytest.param(
            "streamer-declaring-per-event-with-a-cursor",
            {"test_a_reopened_receiver_gets_again_what_its_delivery_profile_says"},
            id="streamer-declaring-per-event-with-a-cursor",
        ),
        pytest.param(
            "streamer-without-a-delivery-profile",
            {
                "test_the_streamer_declares_its_delivery_profile",
                "test_a_reopened_receiver_gets_again_what_its_delivery_profile_says",
            },
            id="streamer-without-a-delivery-profile",
        ),
        pytest.param(
            "streamer-with-one-shared-cursor",
            {"test_cursors_are_kept_per_receiver_name"},
            id="streamer-with-one-shared-cursor",
        ),
        pytest.param(
            "streamer-fixing-latest-at-first-recv",
            {
                "test_stream_from_latest_is_fixed_at_new_receiver_not_at_the_first_recv",
                "test_stream_from_latest_has_no_effect_once_a_cursor_is_committed",
                "test_stream_from_latest_on_an_empty_topic_receives_the_first_event",
            },
            id="streamer-fixing-latest-at-first-recv",
        ),
        pytest.param(
            "receiver-close-raises-the-second-time",
            {"test_receiver_close_is_idempotent"},
            id="receiver-close-raises-the-second-time",
        ),
        pytest.param(
            "sender-close-raises-the-second-time",
            {"test_sender_close_is_idempotent"},
            id="sender-close-raises-the-second-time",
        ),
        pytest.param(
            "scheduler-without-exclusion",
            {
                "test_only_one_of_five_contending_schedulers_holds_a_role_at_a_time",
                "test_a_waiting_hold_is_cancellable",
                "test_exiting_the_block_lets_a_waiter_acquire",
            },
            id="scheduler-without-exclusion",
        ),
        pytest.param(
            "scheduler-with-uncancellable-wait",
            {"test_a_waiting_hold_is_cancellable"},
            id="scheduler-with-uncancellable-wait",
        ),
        pytest.param(
            "scheduler-misreading-held-roles-when-it-looks",
            {"test_only_one_of_five_contending_schedulers_holds_a_role_at_a_time"},
            id="scheduler-misreading-held-roles-when-it-looks",
        ),
        pytest.param(
            "scheduler-never-releasing",
            {
                "test_a_released_role_can_be_held_again",
                "test_cancelling_the_holder_releases_the_role",
                "test_only_one_of_five_contending_schedulers_holds_a_role_at_a_time",
                "test_a_waiting_hold_is_cancellable",
                "test_exiting_the_block_lets_a_waiter_acquire",
            },
            id="scheduler-never-releasing",
        ),
        pytest.param(
            "timeout-store-with-exclusive-boundary",
            {"test_list_valid_includes_a_timeout_due_exactly_now"},
            id="timeout-store-with-exclusive-boundary",
        ),
        pytest.param(
            "timeout-store-creating-duplicates",
            {
                "test_create_is_idempotent_and_returns_the_existing_id",
                "test_create_of_a_completed_timeout_returns_its_id_and_does_not_revive_it",
            },
            id="timeout-store-creating-duplicates",
        ),
        pytest.param(
            "timeout-store-ignoring-unknown-cancels",
            {
                "test_cancel_of_an_unknown_id_raises_timeout_not_found",
                "test_cancel_of_a_cancelled_timeout_raises_timeout_not_found",
            },
            id="timeout-store-ignoring-unknown-cancels",
        ),
        pytest.param(
            "timeout-store-listing-completed",
            {
                "test_create_of_a_completed_timeout_returns_its_id_and_does_not_revive_it",
                "test_list_excludes_completed_and_cancelled_timeouts",
            },
            id="timeout-store-listing-completed",
        ),
        pytest.param(
            "connector-ignoring-acks",
            {
                "test_acked_events_are_not_redelivered_to_a_new_consumer_of_the_same_name",
                "test_cursor_advances_only_over_an_unbroken_run_of_acks",
            },
            id="connector-ignoring-acks",
        ),
        pytest.param(
            "connector-close-raises-the-second-time",
            {"test_constructor_close_is_idempotent"},
            id="connector-close-raises-the-second-time",
        ),
        pytest.param(
            "connector-with-one-shared-cursor",
            {"test_a_consumer_of_another_name_sees_every_event"},
            id="connector-with-one-shared-cursor",
        ),
        pytest.param(
            "streamer-close-raises-the-second-time",
            {"test_streamer_close_is_idempotent"},
            id="streamer-close-raises-the-second-time",
        ),
        pytest.param(
            "record-store-close-raises-the-second-time",
            {"test_close_is_idempotent"},
            id="record-store-close-raises-the-second-time",
        ),
        pytest.param(
            "role-scheduler-close-raises-the-second-time",
            {"test_close_is_idempotent"},
            id="role-scheduler-close-raises-the-second-time",
        ),
        pytest.param(
            "timeout-store-close-raises-the-second-time",
            {"test_close_is_idempotent"},
            id="timeout-store-close-raises-the-second-time",
        ),
        pytest.param(
            "connector-pending-always-zero",
            {
                "test_pending_is_positive_while_a_seeded_event_waits_to_be_handed_out",
                "test_unacknowledged_events_are_pending_for_a_reopened_consumer",
            },
            id="connector-pending-always-zero",
        ),
        pytest.param(
            "connector-pending-always-one",
            {"test_pending_falls_to_zero_once_everything_is_handed_out_and_acknowledged"},
            id="connector-pending-always-one",
        ),
        pytest.param(
            "pending-always-zero",
            {
                "test_pending_is_positive_until_every_sent_event_is_handed_out_then_zero",
                "test_events_sent_before_the_receiver_opened_are_pending",
                "test_events_sent_by_another_sender_are_pending",
                "test_unacknowledged_events_are_pending_for_a_reopened_receiver",
            },
            id="pending-always-zero",
        ),
        pytest.param(
            "pending-always-one",
            {
                "test_pending_is_positive_until_every_sent_event_is_handed_out_then_zero",
                "test_pending_is_zero_after_one_recv_handed_out_every_event",
                "test_events_sent_before_the_receiver_opened_are_pending",
                "test_events_sent_by_another_sender_are_pending",
                "test_events_of_another_topic_are_not_pending",
                "test_unacknowledged_events_are_pending_for_a_reopened_receiver",
            },
            id="pending-always-one",
        ),
        pytest.param(
            "pending-counting-unacknowledged-events",
            {
                "test_pending_is_positive_until_every_sent_event_is_handed_out_then_zero",
                "test_pending_is_zero_after_one_recv_handed_out_every_event",
                "test_events_sent_before_the_receiver_opened_are_pending",
                "test_events_sent_by_another_sender_are_pending",
                "test_events_of_another_topic_are_not_pending",
                "test_unacknowledged_events_are_pending_for_a_reopened_receiver",
            },
            id="pending-counting-unacknowledged-events",
        ),
        pytest.param(
            "pending-raising-when-closed",
            {"test_a_closed_receiver_still_answers_pending"},
            id="pending-raising-when-closed",
        ),
        pytest.param(
            "store-naming-another-streamer",
            {"test_publishes_to_is_the_streamer_it_publishes_to"},
            id="store-naming-another-streamer",
        ),
        pytest.param(
            "store-publishing-to-another-streamer",
            {
                "test_each_write_puts_its_event_on_its_topic_as_the_relay_would_send_it",
                "test_store_many_publishes_the_applied_writes_in_order_and_no_rejected_one",
                "test_a_rejected_write_publishes_nothing",
            },
            id="store-publishing-to-another-streamer",
        ),
        pytest.param(
            "store-publishing-and-keeping-its-outbox",
            {"test_a_published_write_leaves_no_outbox_event"},
            id="store-publishing-and-keeping-its-outbox",
        ),
        pytest.param(
            "store-publishing-the-foreign-id",
            {
                "test_each_write_puts_its_event_on_its_topic_as_the_relay_would_send_it",
                "test_store_many_publishes_the_applied_writes_in_order_and_no_rejected_one",
                "test_a_rejected_write_publishes_nothing",
            },
            id="store-publishing-the-foreign-id",
        ),
        pytest.param(
            "store-publishing-before-compare-and-set",
            {
                "test_store_many_publishes_the_applied_writes_in_order_and_no_rejected_one",
                "test_a_rejected_write_publishes_nothing",
            },
            id="store-publishing-before-compare-and-set",
        ),
        pytest.param(
            "snapshots-dropping-versions",
            {
                "test_snapshots_hold_every_applied_version_oldest_first",
                "test_writes_applied_by_store_many_are_snapshotted",
                "test_a_rejected_write_leaves_no_snapshot",
                "test_snapshots_are_kept_per_run",
            },
            id="snapshots-dropping-versions",
        ),
        pytest.param(
            "snapshots-of-rejected-writes",
            {"test_a_rejected_write_leaves_no_snapshot"},
            id="snapshots-of-rejected-writes",
        ),
        pytest.param(
            "snapshots-newest-first",
            {
                "test_snapshots_hold_every_applied_version_oldest_first",
                "test_writes_applied_by_store_many_are_snapshotted",
                "test_a_rejected_write_leaves_no_snapshot",
                "test_snapshots_are_kept_per_run",
            },
            id="snapshots-newest-first",
        ),
        pytest.param(
            "wait-for-change-never-waking",
            {
                "test_a_waiter_returns_after_a_write",
                "test_a_waiter_returns_after_a_store_many",
                "test_every_waiter_returns_after_one_write",
            },
            id="wait-for-change-never-waking",
        ),
        pytest.param(
            "wait-for-change-ignoring-its-timeout",
            {"test_a_waiter_returns_at_its_timeout_without_a_write"},
            id="wait-for-change-ignoring-its-timeout",
        ),
        pytest.param(
            "store-many-notifying-nobody",
            {"test_a_waiter_returns_after_a_store_many"},
            id="store-many-notifying-nobody",
        ),
        pytest.param(
            "outbox-size-never-decreasing",
            {"test_deleted_outbox_events_no_longer_count"},
            id="outbox-size-never-decreasing",
        ),
        pytest.param(
            "outbox-size-of-one-workflow",
            {
                "test_each_applied_write_of_any_workflow_counts_once",
                "test_deleted_outbox_events_no_longer_count",
            },
            id="outbox-size-of-one-workflow",
        ),
        pytest.param(
            "failures-of-stale-versions-kept",
            {"test_a_failure_of_a_version_the_run_moved_on_from_is_not_kept"},
            id="failures-of-stale-versions-kept",
        ),
        pytest.param(
            "failures-bumping-the-version",
            {
                "test_recording_a_failure_leaves_the_record_and_its_outbox_untouched",
                "test_failures_are_listed_oldest_first_and_filtered_by_version",
                "test_retries_due_lists_the_latest_failure_of_each_run_of_that_process",
                "test_retries_due_lists_a_run_only_while_it_is_at_that_version",
                "test_retries_due_lists_the_earliest_due_first_up_to_the_limit",
            },
            id="failures-bumping-the-version",
        ),
        pytest.param(
            "retries-due-listing-every-failure",
            {
                "test_retries_due_lists_the_latest_failure_of_each_run_of_that_process",
                "test_retries_due_lists_a_run_only_while_it_is_at_that_version",
                "test_retries_due_lists_the_earliest_due_first_up_to_the_limit",
            },
            id="retries-due-listing-every-failure",
        ),
        pytest.param(
            "history-of-lost-writes",
            {"test_a_write_that_lost_its_compare_and_set_adds_no_entry"},
            id="history-of-lost-writes",
        ),
        pytest.param(
            "runs-listed-by-offset",
            {"test_a_run_created_after_the_first_page_does_not_shift_later_pages"},
            id="runs-listed-by-offset",
        ),
        pytest.param(
            "runs-listed-ignoring-the-prefix",
            {
                "test_the_foreign_id_prefix_filter",
                "test_a_prefix_matches_like_wildcards_and_backslashes_as_text",
                "test_filters_combine",
                "test_count_counts_the_matching_runs",
            },
            id="runs-listed-ignoring-the-prefix",
        ),
        pytest.param(
            "runs-listed-by-an-unescaped-like",
            {
                "test_a_prefix_matches_like_wildcards_and_backslashes_as_text",
                "test_a_run_id_prefix_matches_like_wildcards_and_backslashes_as_text",
            },
            id="runs-listed-by-an-unescaped-like",
        ),
        pytest.param(
            "runs-listed-ignoring-the-run-id-prefix",
            {
                "test_the_run_id_prefix_filter",
                "test_a_run_id_prefix_resolves_a_short_run_id_with_a_page_of_two",
                "test_the_runs_of_a_run_id_prefix_page_with_a_cursor",
                "test_a_run_id_prefix_matches_like_wildcards_and_backslashes_as_text",
                "test_a_run_id_prefix_no_store_can_hold_matches_no_run",
                "test_filters_combine",
            },
            id="runs-listed-ignoring-the-run-id-prefix",
        ),
        pytest.param(
            "runs-listed-by-the-run-id-prefix-on-the-foreign-id",
            {
                "test_the_run_id_prefix_filter",
                "test_a_run_id_prefix_resolves_a_short_run_id_with_a_page_of_two",
                "test_the_runs_of_a_run_id_prefix_page_with_a_cursor",
                "test_a_run_id_prefix_matches_like_wildcards_and_backslashes_as_text",
                "test_filters_combine",
            },
            id="runs-listed-by-the-run-id-prefix-on-the-foreign-id",
        ),
        pytest.param(
            "runs-listed-failing-on-a-run-id-prefix-no-store-holds",
            {"test_a_run_id_prefix_no_store_can_hold_matches_no_run"},
            id="runs-listed-failing-on-a-run-id-prefix-no-store-holds",
        ),
        pytest.param(
            "runs-listed-with-ties-by-insertion",
            {"test_runs_created_at_the_same_instant_are_ordered_by_run_id"},
            id="runs-listed-with-ties-by-insertion",
        ),
        pytest.param(
            "runs-counted-past-the-cap",
            {"test_count_stops_at_the_cap"},
            id="runs-counted-past-the-cap",
        ),
        pytest.param(
            "runs-listed-after-an-exclusive-created-after",
            {"test_created_after_is_inclusive_and_created_before_exclusive"},
            id="runs-listed-after-an-exclusive-created-after",
        ),
        pytest.param(
            "definitions-versioned-per-registration",
            {
                "test_the_same_document_again_returns_it_unchanged",
                "test_concurrent_registrations_of_one_document_keep_one_version",
                "test_concurrent_registrations_after_a_change_keep_one_new_version",
            },
            id="definitions-versioned-per-registration",
        ),
        pytest.param(
            "definitions-reusing-any-version-of-the-hash",
            {"test_returning_to_an_older_document_is_a_new_version"},
            id="definitions-reusing-any-version-of-the-hash",
        ),
        pytest.param(
            "definitions-registered-without-atomicity",
            {
                "test_concurrent_registrations_of_one_document_keep_one_version",
                "test_concurrent_registrations_after_a_change_keep_one_new_version",
            },
            id="definitions-registered-without-atomicity",
        ),
        pytest.param(
            "definition-versions-newest-first",
            {
                "test_versions_are_listed_oldest_first",
                "test_a_changed_document_is_the_next_version_and_the_latest",
            },
            id="definition-versions-newest-first",
        ),
        pytest.param(
            "event-location-pinned-by-the-latest",
            {
                "test_a_later_different_pin_returns_the_first",
                "test_concurrent_first_pins_of_different_locations_all_return_one",
                "test_a_repin_overwrites_and_later_pins_return_the_new_location",
                "test_a_repin_on_a_fresh_store_records_the_location",
            },
            id="event-location-pinned-by-the-latest",
        ),
        pytest.param(
            "event-location-pinned-without-atomicity",
            {"test_concurrent_first_pins_of_different_locations_all_return_one"},
            id="event-location-pinned-without-atomicity",
        ),
        pytest.param(
            "event-location-never-repinned",
            {
                "test_a_repin_overwrites_and_later_pins_return_the_new_location",
                "test_a_repin_on_a_fresh_store_records_the_location",
            },
            id="event-location-never-repinned",
        ),
        pytest.param(
            "tail-from-the-start",
            {
                "test_events_sent_before_the_tail_opened_are_not_handed_out_later_ones_are",
                "test_a_tail_opened_later_starts_at_its_own_open",
                "test_a_tail_leaves_no_cursor_and_needs_no_acks",
            },
            id="tail-from-the-start",
        ),
        pytest.param(
            "tail-positioned-at-its-first-read",
            {
                "test_events_sent_before_the_tail_opened_are_not_handed_out_later_ones_are",
                "test_events_round_trip_foreign_id_type_and_headers",
                "test_a_tail_of_a_topic_never_used_hands_out_its_first_event",
                "test_every_event_is_handed_out_once_across_many_batches",
                "test_two_tails_of_one_topic_each_get_every_event",
            },
            id="tail-positioned-at-its-first-read",
        ),
        pytest.param(
            "tails-sharing-one-position",
            {
                "test_two_tails_of_one_topic_each_get_every_event",
                "test_a_tail_opened_later_starts_at_its_own_open",
                "test_many_tails_opened_and_closed_leave_the_streamer_working",
            },
            id="tails-sharing-one-position",
        ),
        pytest.param(
            "tail-close-leaving-a-read-waiting",
            {"test_close_ends_a_pending_read"},
            id="tail-close-leaving-a-read-waiting",
        ),
        pytest.param(
            "tail-close-raising-the-second-time",
            {"test_a_closed_tail_ends_every_later_iteration_and_close_is_idempotent"},
            id="tail-close-raising-the-second-time",
        ),
    ],
)
def test_suite_fails_the_broken_adapter(
    pytester: pytest.Pytester, key: str, caught_by: set[str]
) -> None:
    outcomes = run_suite(pytester, key)

    missed = {name for name in caught_by if outcomes.get(name) != "failed"}
    assert missed == set(), (
        f"these cases passed a broken adapter; all failures: {_failed(outcomes)}"
    )
