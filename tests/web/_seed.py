"""Runs in every state a person meets in the UI, made by a real workflow on a real store.

``seed(backend)`` runs the ``parcels`` workflow until its runs rest: most wait at the
``Packed`` callback, two completed, one paused, one cancelled, two failing their ``pack``
step and waiting (up to a minute, the backoff's ceiling) for their next attempt, and one
whose foreign ID, object and pause reason hold markup.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from conveyor import Builder, Run, RunState, Workflow
from conveyor._capabilities import RecordsFailures
from conveyor._connect import Backend
from conveyor.testing import wait_for

__all__ = ["Parcel", "Seeded", "Ship", "parcels", "seed"]

INJECTED = '<script>alert("x")</script>'


class Ship(enum.IntEnum):
    UNKNOWN = 0
    PLACED = 1
    PACKED = 2
    SHIPPED = 3
    RETURNED = 4


@dataclass
class Parcel:
    note: str = ""
    weight: int = 1


async def pack(run: Run[Parcel, Ship]) -> Ship:
    if run.foreign_id.startswith("fail-"):
        raise RuntimeError("carrier <b>down</b>")
    return Ship.PACKED


def confirm(run: Run[Parcel, Ship], payload: bytes) -> Ship:
    return Ship.RETURNED if payload == b"returned" else Ship.SHIPPED


def parcels() -> Builder[Parcel, Ship]:
    b = Builder("parcels", Parcel, Ship)
    b.add_step(Ship.PLACED, pack, Ship.PACKED).with_options(
        err_backoff=3600.0, pause_after_err_count=100
    )
    b.add_callback(Ship.PACKED, confirm, Ship.SHIPPED, Ship.RETURNED)
    return b


@dataclass
class Seeded:
    waiting: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    injected: str = ""

    def all(self) -> list[str]:
        return [
            *self.waiting,
            *self.completed,
            *self.paused,
            *self.cancelled,
            *self.failing,
            self.injected,
        ]


def build(backend: Backend) -> Workflow[Parcel, Ship]:
    return parcels().build(
        backend.streamer, backend.record_store, backend.role_scheduler, pause_retry=None
    )


async def seed(backend: Backend, waiting: int = 6) -> Seeded:
    """Run ``parcels`` on ``backend`` until every seeded run rests; then stop it."""
    out = Seeded()
    wf = build(backend)
    async with wf:
        ids: dict[str, str] = {}
        for i in range(waiting + 4):
            fid = f"parcel-{i:02d}"
            ids[fid] = await wf.trigger(fid, initial=Parcel(note=f"parcel {i}", weight=i))
        for i in range(2):
            fid = f"fail-{i}"
            ids[fid] = await wf.trigger(fid, initial=Parcel(note="heavy"))
        bad = f"evil-{INJECTED}"
        ids[bad] = await wf.trigger(bad, initial=Parcel(note=INJECTED))
        for fid, run_id in ids.items():
            if not fid.startswith("fail-"):
                await wf.wait(fid, run_id, Ship.PACKED)
        fids = sorted(f for f in ids if f.startswith("parcel-"))
        for fid in fids[:2]:
            await wf.callback(fid, Ship.PACKED, b"")
            await wait_for(wf, fid, lambda r: r.run_state is RunState.COMPLETED)
            out.completed.append(ids[fid])
        await wf.pause(ids[fids[2]], "customer asked to wait")
        out.paused.append(ids[fids[2]])
        await wf.cancel(ids[fids[3]], "duplicate order")
        out.cancelled.append(ids[fids[3]])
        out.waiting = [ids[f] for f in fids[4:]]
        await wf.pause(ids[bad], f"reason {INJECTED}")
        out.injected = ids[bad]
        store = backend.record_store
        assert isinstance(store, RecordsFailures)
        for fid in ("fail-0", "fail-1"):

            async def failed(run: Run[Parcel, Ship], run_id: str = ids[fid]) -> bool:
                found = await store.failures(run_id, run.meta.version)
                return bool(found) and found[-1].next_attempt_at is not None

            await wait_for(wf, fid, failed)
            out.failing.append(ids[fid])
    return out
