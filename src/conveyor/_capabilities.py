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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ._protocols import EventStreamer
from ._record import Record

__all__ = [
    "KeepsSnapshots",
    "NotifiesChanges",
    "PublishesEvents",
    "ReportsOutbox",
    "ReportsPending",
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
