"""``OutboxCache``: what this process knows of each workflow's outbox, so the relay
running here lists it without a query and writes skip the NOTIFY.

The outbox relay of a workflow runs in one process at a time. When it runs in this one,
the store serves its lists from the events this process wrote (see ``_Workflow``),
writes do not NOTIFY (the relay is woken directly), and ``wait_for_outbox`` returns at
once for a write since the relay's last list.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Collection, Sequence

from ..._event import OutboxEvent
from ..._protocols import RecordWrite
from .._rows import HeaderDecoder
from ._database import Database

__all__ = ["OutboxCache"]

_headers = HeaderDecoder(logging.getLogger("conveyor.adapters.postgres"))

_RELAY_ACTIVE = 0.2
"""Seconds after its last list that a relay counts as running in this process."""


class _Workflow:
    """What this process knows about one workflow's outbox.

    Every write notifies the workflow's signal once (here directly, elsewhere through
    NOTIFY). If, since a list that returned every row, each notification was one of this
    process's own writes and every row that list returned has been deleted, the outbox
    holds exactly the events those writes added: ``pending``. The relay (which in a
    one-process deployment runs here) then needs no query.
    """

    __slots__ = (
        "base",
        "base_at",
        "listed_at",
        "pending",
        "seen",
        "unrelayed",
        "waiting",
        "writes",
    )

    LIMIT = 4096
    FRESH = 1.0
    """Seconds a complete list is trusted for: then the table is read again regardless."""

    def __init__(self) -> None:
        self.pending: dict[str, OutboxEvent] = {}
        self.writes = 0  # this process's writes (each fired the signal once)
        self.base: tuple[int, int] | None = None  # (generation, writes) of a complete list
        self.base_at = 0.0  # when that list began (monotonic)
        self.unrelayed: set[str] = set()  # returned by that list, not deleted since
        self.seen = -1  # the generation when the last list began (for wait_for_outbox)
        self.listed_at = -1e9  # when the relay here last listed (monotonic)
        self.waiting = 0  # relays waiting here in wait_for_outbox

    def wrote(self, events: list[OutboxEvent]) -> None:
        self.writes += 1
        if len(self.pending) + len(events) > self.LIMIT:
            # Nobody lists here (the relay runs elsewhere): stop keeping them.
            self.pending.clear()
            self.base = None
            return
        for event in events:
            self.pending[event.id] = event

    def known(self, generation: int, listening: bool, now: float) -> bool:
        base = self.base
        return (
            base is not None
            and listening
            and not self.unrelayed
            and generation - base[0] == self.writes - base[1]
            and now - self.base_at < self.FRESH
        )


class OutboxCache:
    """The outbox as this process knows it, per workflow (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._workflows: dict[str, _Workflow] = {}
        self._list_sql = (
            "SELECT id, workflow_name, run_id, type, headers, created_at "
            f"FROM {db.tables.outbox} "
            "WHERE workflow_name = $1 AND NOT id = ANY($3::text[]) ORDER BY seq LIMIT $2"
        )

    def _state(self, workflow_name: str) -> _Workflow:
        state = self._workflows.get(workflow_name)
        if state is None:
            state = self._workflows[workflow_name] = _Workflow()
        return state

    def must_notify(self, workflow_name: str) -> bool:
        """Whether a write must NOTIFY (a tenth of a millisecond of server time each).

        Only the workflow's relay waits for these notifications, and it runs in one
        process at a time (it holds a role). While it runs here, the write's local signal
        wakes it and nobody else needs the NOTIFY. "Runs here" is: waiting in
        ``wait_for_outbox`` now, or listed within the last ``_RELAY_ACTIVE`` seconds. A
        relay that takes over elsewhere within that tail misses those notifications and
        finds the writes at its next poll (``OutboxOptions.polling_frequency``) or
        resynchronisation (``_Workflow.FRESH``).
        """
        state = self._workflows.get(workflow_name)
        if state is None:
            return True
        return not (state.waiting or time.monotonic() - state.listed_at < _RELAY_ACTIVE)

    def notified(self, writes: Sequence[RecordWrite]) -> list[str]:
        """The workflows of ``writes`` whose writes must NOTIFY."""
        names = {w.record.workflow_name for w in writes}
        return [name for name in names if self.must_notify(name)]

    def wrote(self, writes: Sequence[RecordWrite], applied: Sequence[bool]) -> None:
        """These writes committed (where ``applied``): keep their events, wake the relay."""
        written: dict[str, list[OutboxEvent]] = {}
        for write, ok in zip(writes, applied, strict=True):
            if ok:
                written.setdefault(write.record.workflow_name, []).append(write.outbox)
        for name, events in written.items():
            self._state(name).wrote(events)
            self._db.fire(f"o:{name}")

    def relayed(self, ids: Collection[str]) -> None:
        """The relay sent these events: they no longer count as in the outbox."""
        for state in self._workflows.values():
            state.unrelayed.difference_update(ids)
            for event_id in ids:
                state.pending.pop(event_id, None)

    async def list(
        self, workflow_name: str, limit: int, deleting: Collection[str]
    ) -> list[OutboxEvent]:
        """Up to ``limit`` outbox events, oldest first, leaving out ``deleting``.

        Needs no query when this process knows the outbox's content: never while the
        LISTEN connection is down, when another process wrote since the last complete
        list, or when rows it returned were not deleted. A row whose headers do not decode
        is listed with empty headers (logged once): the relay rebuilds its event.
        """
        state = self._state(workflow_name)
        generation = self._db.signal(f"o:{workflow_name}").generation
        now = time.monotonic()
        state.seen = generation
        state.listed_at = now
        if state.known(generation, self._db.listening, now):
            return list(itertools.islice(state.pending.values(), max(0, limit)))
        writes = state.writes
        state.pending.clear()  # the query sees them (or later writes add them again)
        rows = await self._db.fetch(
            "listing outbox events", self._list_sql, workflow_name, max(0, limit), list(deleting)
        )
        state.base = (generation, writes) if len(rows) < limit else None
        state.base_at = now
        state.unrelayed = {row["id"] for row in rows}
        return [
            OutboxEvent(
                id=row["id"],
                workflow_name=row["workflow_name"],
                run_id=row["run_id"],
                type=row["type"],
                headers=_headers.decode(
                    row["headers"],
                    ("outbox", row["id"]),
                    f"outbox event {row['id']!r}",
                    workflow=row["workflow_name"],
                    run_id=row["run_id"],
                ),
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def wait(self, workflow_name: str, timeout: float) -> None:
        """Wait for a write's notification (this process's writes fire it directly).

        A write that happened since the last ``list`` of the workflow makes this return at
        once, so a relay that lists, finds nothing and then waits never sleeps through a
        write that landed in between.
        """
        signal = self._db.signal(f"o:{workflow_name}")
        state = self._state(workflow_name)
        state.waiting += 1
        try:
            await signal.wait(min(timeout, self._db.wait_timeout()), state.seen)
        finally:
            state.waiting -= 1
            state.listed_at = time.monotonic()
