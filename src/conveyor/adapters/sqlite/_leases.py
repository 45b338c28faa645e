"""One round of the role scheduler on the database: look, decide, and write if needed.

Runs on the scheduler's database thread as a single job (``tick``). It reads every
lease, member and want, decides which free roles this member takes now and which of
its roles it should hand over, and writes (heartbeat, wants, releases, renewals,
takes) in one ``BEGIN IMMEDIATE`` transaction when anything needs writing. A take
re-reads the lease inside that transaction, so two members never both take a role.

Spreading. Roles go to live members that want them (wait for or hold them), as
``conveyor.abc.kit``'s ``assign_roles`` assigns them (the algorithm the PostgreSQL
scheduler uses too): each holder keeps up to its fair share, the other roles go to the
least-loaded member that wants them. A member takes a free role at once if the role is
assigned to it, and any free role it waits for once that has been free for ``grace``
seconds (so a role whose assigned member is busy elsewhere still gets a holder). A
member hands over the roles it holds that are assigned to another live member: its lease
is reported lost, and the row is deleted only when the holder leaves its ``hold`` block,
so the two never overlap.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from ..._kit._spread import assign_roles
from ._db import wall_us

__all__ = ["TickIn", "TickOut", "boot_id", "tick"]


def boot_id() -> str:
    """Names this machine's monotonic clock (it restarts at every boot); "" if unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class TickIn:
    """What the scheduler wants from this round (a snapshot of its state)."""

    member: str
    clock: str
    ttl: float
    grace: float
    waiting: frozenset[str]
    """Roles a local ``hold`` waits for."""
    held: frozenset[str]
    """Roles whose ``hold`` block has not exited (their rows should be ours)."""
    lost: frozenset[str]
    """Held roles already reported lost (they are on their way out)."""
    releases: frozenset[str]
    """Roles whose block exited: delete their rows."""
    free_since: dict[str, float]
    renew: bool
    """Heartbeat and renew every lease of ours in this round."""


@dataclass(slots=True)
class TickOut:
    """What happened in the round."""

    wrote: bool = False
    taken: list[str] = field(default_factory=list)
    owned: set[str] = field(default_factory=set)
    shed: list[str] = field(default_factory=list)
    free_since: dict[str, float] = field(default_factory=dict)


def _alive(clock: str, expires_mono: int, expires_wall: int, my_clock: str, now: int) -> bool:
    if clock and clock == my_clock:
        return expires_mono > now
    return expires_wall > wall_us()


@dataclass(slots=True)
class _View:
    """The lease tables as this member sees them in one round."""

    wanted_by: dict[str, set[str]]
    """Role -> live members that want it (this member: its desired roles)."""
    my_wants: set[str]
    holder_of: dict[str, str]
    """Role -> another member holding an unexpired lease."""
    registered: bool
    """This member's heartbeat row exists and has not expired."""
    owned: set[str]
    """Roles whose lease row names this member (expired or not)."""

    def assignment(self, me: str, keeping: frozenset[str]) -> dict[str, str]:
        """Role -> the member it should go to, this member holding ``keeping``."""
        wanted: dict[str, list[str]] = {}
        for role, members in self.wanted_by.items():
            for member in members:
                wanted.setdefault(member, []).append(role)
        holders = dict(self.holder_of)
        holders.update(dict.fromkeys(keeping, me))
        return assign_roles(wanted, holders)


def _read(conn: sqlite3.Connection, inp: TickIn, desired: frozenset[str], now: int) -> _View:
    me = inp.member
    conn.execute("BEGIN")
    try:
        leases = conn.execute(
            "SELECT role, holder, clock, expires_mono, expires_wall FROM leases"
        ).fetchall()
        members = conn.execute(
            "SELECT id, clock, expires_mono, expires_wall FROM members"
        ).fetchall()
        wants = conn.execute("SELECT role, member FROM wants").fetchall()
    finally:
        conn.execute("COMMIT")
    live = {
        m["id"]
        for m in members
        if _alive(m["clock"], m["expires_mono"], m["expires_wall"], inp.clock, now)
    }
    wanted_by: dict[str, set[str]] = {}
    my_wants: set[str] = set()
    for want in wants:
        role, member = want["role"], want["member"]
        if member == me:
            my_wants.add(role)
        elif member in live:
            wanted_by.setdefault(role, set()).add(member)
    for role in desired:
        wanted_by.setdefault(role, set()).add(me)
    holder_of: dict[str, str] = {}
    owned: set[str] = set()
    for lease in leases:
        role, holder = lease["role"], lease["holder"]
        if holder == me:
            owned.add(role)
        elif _alive(lease["clock"], lease["expires_mono"], lease["expires_wall"], inp.clock, now):
            holder_of[role] = holder
    return _View(
        wanted_by=wanted_by,
        my_wants=my_wants,
        holder_of=holder_of,
        registered=me in live,
        owned=owned,
    )


def tick(conn: sqlite3.Connection, inp: TickIn) -> TickOut:
    """One round (on the database thread; busy errors make the caller retry it whole)."""
    me = inp.member
    now = time.monotonic_ns()
    now_s = now / 1e9
    desired = (inp.waiting | inp.held) - inp.releases
    view = _read(conn, inp, desired, now)
    # Held roles already reported lost are on their way out: no longer ours to keep.
    keeping = inp.held - inp.releases - inp.lost
    assignment = view.assignment(me, keeping)
    out = TickOut()

    take: list[str] = []
    for role in sorted(inp.waiting):
        if role in view.holder_of:
            continue
        since = inp.free_since.get(role, now_s)
        out.free_since[role] = since
        if assignment.get(role) == me or now_s - since >= inp.grace:
            take.append(role)
    out.shed = sorted(role for role in keeping if assignment.get(role, me) != me)

    if take or inp.releases or inp.renew or view.my_wants != desired or not view.registered:
        _write(conn, inp, desired, view.my_wants, take, out)
    else:
        out.owned = view.owned
    return out


def _owned(conn: sqlite3.Connection, me: str) -> set[str]:
    rows = conn.execute("SELECT role FROM leases WHERE holder = ?", (me,))
    return {row["role"] for row in rows}


_LONG_DEAD = 10
"""Lease and member rows expired this many lease times ago are deleted (they are
equivalent to no row; this only keeps the tables small across restarts)."""


def _forget_the_dead(conn: sqlite3.Connection, inp: TickIn, now: int) -> None:
    mono_cut = now - int(_LONG_DEAD * inp.ttl * 1e9)
    wall_cut = wall_us() - int(_LONG_DEAD * inp.ttl * 1e6)
    expired = (
        "((:clock != '' AND clock = :clock AND expires_mono < :mono) "
        "OR ((:clock = '' OR clock != :clock) AND expires_wall < :wall))"
    )
    params = {"clock": inp.clock, "mono": mono_cut, "wall": wall_cut}
    conn.execute(f"DELETE FROM leases WHERE {expired}", params)
    conn.execute(f"DELETE FROM members WHERE {expired}", params)
    conn.execute("DELETE FROM wants WHERE member NOT IN (SELECT id FROM members)")


def _write(
    conn: sqlite3.Connection,
    inp: TickIn,
    desired: frozenset[str],
    my_wants: set[str],
    take: list[str],
    out: TickOut,
) -> None:
    me = inp.member
    conn.execute("BEGIN IMMEDIATE")
    try:
        now = time.monotonic_ns()
        mono = now + int(inp.ttl * 1e9)
        wall = wall_us() + int(inp.ttl * 1e6)
        conn.execute(
            "INSERT INTO members (id, clock, expires_mono, expires_wall) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET clock = excluded.clock, "
            "expires_mono = excluded.expires_mono, expires_wall = excluded.expires_wall",
            (me, inp.clock, mono, wall),
        )
        if inp.renew:
            _forget_the_dead(conn, inp, now)
        conn.executemany(
            "DELETE FROM wants WHERE role = ? AND member = ?",
            [(role, me) for role in my_wants - desired],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO wants (role, member) VALUES (?, ?)",
            [(role, me) for role in desired - my_wants],
        )
        conn.executemany(
            "DELETE FROM leases WHERE role = ? AND holder = ?",
            [(role, me) for role in inp.releases],
        )
        conn.execute(
            "UPDATE leases SET clock = ?, expires_mono = ?, expires_wall = ? WHERE holder = ?",
            (inp.clock, mono, wall, me),
        )
        out.owned = _owned(conn, me)
        for role in take:
            row = conn.execute(
                "SELECT holder, clock, expires_mono, expires_wall FROM leases WHERE role = ?",
                (role,),
            ).fetchone()
            if (
                row is not None
                and row["holder"] != me
                and _alive(row["clock"], row["expires_mono"], row["expires_wall"], inp.clock, now)
            ):
                continue
            conn.execute(
                "INSERT INTO leases (role, holder, clock, expires_mono, expires_wall) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (role) DO UPDATE SET "
                "holder = excluded.holder, clock = excluded.clock, "
                "expires_mono = excluded.expires_mono, expires_wall = excluded.expires_wall",
                (role, me, inp.clock, mono, wall),
            )
            out.taken.append(role)
            out.owned.add(role)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    out.wrote = True
