"""``PostgresRoleScheduler``: roles as leases in a table, spread over the live processes.

Leases. A role is a row ``(role, holder, expires_at, epoch)``. A scheduler takes a free
role (``expires_at`` in the past, by the database's clock) with one conditional
``UPDATE``, and renews every role it holds, with its membership, every ``role_renew``
seconds in one statement. It treats a lease as lost ``role_ttl - margin`` seconds after it
*sent* the last renewal that succeeded (by its own monotonic clock; ``margin`` is a fifth
of the TTL), which is before the row expires for anyone else, so two holders never
overlap as long as the clocks run at the same rate. A renewal that finds the row taken
(or gone) loses the lease at once. Nothing is tied to a connection: a dropped or
terminated connection is replaced and the next renewal goes through it; a database
restart shorter than the TTL costs no role. A process frozen past its deadline (a long
pause, a partition) finds its leases lost when it runs again, before doing more work
under them as far as its event loop lets it; compare-and-set writes make any overlap
harmless to the data. ``epoch`` counts acquisitions: a fencing token for user code.

Takeover time. A holder that dies (or cannot reach the database) stops renewing; its
rows expire at most ``role_ttl`` after its last renewal, and the scheduler a role is
assigned to takes it at its next look, so a role is unheld for at most
``role_ttl + role_renew`` seconds (defaults: 10 + 1). A holder that exits its block
releases the row at once and notifies the others, so a hand-over takes milliseconds.

Spreading. Each scheduler is a *member* with a heartbeat (its renewal) and the list of
roles it wants. Every member computes the same assignment (``conveyor.abc.kit``'s
``assign_roles``, shared with the other adapters) from the live members and the current
holders: each holder keeps up to its fair share of its roles, the rest go in name order
(so the shards of one consumer are neighbours) to the least-loaded member that wants
them. Roles therefore move only to even out the load. A member takes the free roles
assigned to it at once and other free roles only after they stayed free for
``role_grace`` seconds (so the assigned member gets them first, and a role whose
assigned member is busy elsewhere still gets a holder). A holder gives up a role
assigned to another live member once that member has been up for ``role_grace`` seconds:
its lease is lost, the engine stops the work, the block exits and releases the row. So
starting another process moves its share of the roles to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg

from ..._errors import AdapterError
from ..._kit._lease import DeadlineLease
from ..._kit._spread import assign_roles
from ._database import Connection, Database
from ._errors import is_connection_error, translate

__all__ = ["PostgresLease", "PostgresRoleScheduler"]

log = logging.getLogger("conveyor.adapters.postgres")


class PostgresLease(DeadlineLease):
    """A held role. ``epoch`` increases with every acquisition of the role (a fencing token)."""

    __slots__ = ("epoch",)

    def __init__(self, role: str, epoch: int, deadline: float) -> None:
        self.epoch: int = epoch
        super().__init__(role, deadline)


class PostgresRoleScheduler:
    """``RoleScheduler`` on PostgreSQL leases (see the module docstring).

    One per process: it is one member. Within the process, holders of one role take
    turns in the order they asked. ``close()`` releases everything and leaves.
    """

    def __init__(self, db: Database, *, member_id: str | None = None) -> None:
        self._db = db
        options = db.options
        if not 0 < options.role_renew <= options.role_ttl / 3:
            raise AdapterError("role_renew must be positive and at most a third of role_ttl")
        self._ttl = options.role_ttl
        self._margin = options.role_ttl / 5
        self._renew = options.role_renew
        self._grace = options.role_grace
        self.member_id: str = member_id or uuid.uuid4().hex
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, asyncio.Future[PostgresLease]] = {}
        self._held: dict[str, PostgresLease] = {}
        self._signal = db.signal("r:")
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        t = db.tables
        interval = "* interval '1 second'"
        self._tick_sql = f"""
WITH me AS (
    INSERT INTO {t.members} (id, wanted, expires_at) VALUES ($1, $2, now() + $4 {interval})
    ON CONFLICT (id) DO UPDATE SET wanted = excluded.wanted, expires_at = excluded.expires_at
    RETURNING joined_at
),
renewed AS (
    UPDATE {t.roles} SET expires_at = now() + $4 {interval}
    WHERE holder = $1 AND role = ANY($3::text[]) RETURNING role
)
SELECT 'renewed' AS kind, role AS name, NULL AS holder, NULL::text[] AS roles, false AS flag,
    false AS long_flag FROM renewed
UNION ALL
SELECT 'member', id, NULL, wanted, joined_at < now() - $5 {interval}, false FROM {t.members}
    WHERE expires_at > now() AND id <> $1
UNION ALL
SELECT 'role', role, CASE WHEN expires_at >= now() THEN holder END, NULL, expires_at < now(),
    expires_at < now() - $5 {interval}
    FROM {t.roles} r
    WHERE role = ANY($2::text[]) OR EXISTS (
        SELECT 1 FROM {t.members} m
        WHERE m.expires_at > now() AND m.id <> $1 AND r.role = ANY(m.wanted))
"""
        # Rows in name order: concurrent inserts of overlapping sets cannot deadlock.
        self._create_sql = (
            f"INSERT INTO {t.roles} (role) SELECT r FROM unnest($1::text[]) r ORDER BY r "
            "ON CONFLICT DO NOTHING"
        )
        self._acquire_sql = f"""
UPDATE {t.roles} SET holder = $1, expires_at = now() + $4 {interval}, epoch = epoch + 1
WHERE (role = ANY($2::text[]) AND expires_at < now())
   OR (role = ANY($3::text[]) AND expires_at < now() - $5 {interval})
RETURNING role, epoch
"""
        self._release_sql = f"""
WITH released AS (
    UPDATE {t.roles} SET holder = NULL, expires_at = now()
    WHERE role = $2 AND holder = $1 AND epoch = $3 RETURNING role
),
me AS (UPDATE {t.members} SET wanted = $4 WHERE id = $1)
SELECT pg_notify({t.channel!r}, 'r:') FROM released
"""
        self._leave_sql = (
            f"WITH gone AS (DELETE FROM {t.members} WHERE id = $1), "
            f"freed AS (UPDATE {t.roles} SET holder = NULL, expires_at = now() "
            "WHERE holder = $1 RETURNING role) "
            f"SELECT pg_notify({t.channel!r}, 'r:')"
        )

    # ------------------------------------------------------------------ hold

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[PostgresLease]:
        lock = self._locks.get(role)
        if lock is None:
            lock = self._locks[role] = asyncio.Lock()
        async with lock:
            lease = await self._acquire(role)
            try:
                yield lease
            finally:
                await asyncio.shield(self._release(lease))

    def held_roles(self) -> list[str]:
        """The roles this scheduler holds now."""
        return sorted(r for r, lease in self._held.items() if not lease.lost())

    async def _acquire(self, role: str) -> PostgresLease:
        if self._closed:
            raise AdapterError("role scheduler is closed")
        fut: asyncio.Future[PostgresLease] = asyncio.get_running_loop().create_future()
        self._waiting[role] = fut
        self._start()
        self._signal.fire()
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if self._waiting.get(role) is fut:
                del self._waiting[role]
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # Granted just as we were cancelled: give it back.
                await asyncio.shield(self._release(fut.result()))
            else:
                fut.cancel()
            self._signal.fire()  # tell the others we no longer want it
            raise

    async def _release(self, lease: PostgresLease) -> None:
        lease._lose("released")
        if self._held.get(lease.role) is lease:
            del self._held[lease.role]
        try:
            await self._db.write(
                "releasing a role",
                self._release_sql,
                self.member_id,
                lease.role,
                lease.epoch,
                self._wanted(),
            )
        except AdapterError as exc:  # the row expires by itself
            log.warning("cannot release role %r (it expires instead): %s", lease.role, exc)

    def _wanted(self) -> list[str]:
        return sorted(set(self._waiting) | set(self._held))

    # ------------------------------------------------------------------ the loop

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"conveyor-postgres-roles-{self.member_id[:8]}"
            )

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                generation = self._signal.generation
                try:
                    await self._tick()
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    if failures == 1 or failures % 20 == 0:
                        log.warning("role scheduler cannot reach the database: %s", exc)
                self._expire()
                delay = self._renew if failures == 0 else min(self._renew, 0.05 * 2**failures)
                deadlines = [lease.deadline - time.monotonic() for lease in self._held.values()]
                delay = max(0.0, min([delay, *deadlines]))
                if not self._waiting and not self._held:
                    delay = self._db.options.role_ttl  # nothing to do: keep the row fresh
                await self._signal.wait(delay, generation)
        finally:
            for lease in list(self._held.values()):
                lease._lose("role scheduler stopped")

    def _expire(self) -> None:
        for lease in list(self._held.values()):
            lease.lost()  # checks the deadline

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = self._conn = await self._db.connect(application_name="conveyor-roles")
        return conn

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        conn = await self._connection()
        try:
            rows = await conn.fetch(sql, *args)
        except BaseException as exc:
            if not isinstance(exc, asyncpg.PostgresError) or is_connection_error(exc):
                conn.terminate()  # interrupted or broken: start again on a new one
                self._conn = None
            if isinstance(exc, Exception):
                raise translate(exc, "renewing roles") from exc
            raise
        return rows

    async def _tick(self) -> None:
        wanted = self._wanted()
        held = sorted(self._held)
        waiting = sorted(self._waiting)
        sent = time.monotonic()
        rows = await self._fetch(
            self._tick_sql, self.member_id, wanted, held, self._ttl, self._grace
        )
        renewed: set[str] = set()
        members: dict[str, list[str]] = {self.member_id: wanted}
        settled: set[str] = set()
        holders: dict[str, str] = {}
        # Waiting roles that are free -> whether free for longer than the grace period. A
        # role without a row yet is free since ever.
        free: dict[str, bool] = dict.fromkeys(waiting, True)
        seen: set[str] = set()
        for row in rows:  # columns named by the first SELECT of the union
            kind, name = row["kind"], row["name"]
            if kind == "renewed":
                renewed.add(name)
            elif kind == "member":
                members[name] = row["roles"]
                if row["flag"]:
                    settled.add(name)
            else:
                seen.add(name)
                if row["holder"] is not None:
                    holders[name] = row["holder"]
                if name in free:
                    if row["flag"]:
                        free[name] = row["long_flag"]
                    else:
                        del free[name]
        deadline = sent + self._ttl - self._margin
        for role, lease in list(self._held.items()):
            if role in renewed:
                lease._extend(deadline)
            elif role in held:
                lease._lose("taken over (the lease had expired)")
        missing = [r for r in waiting if r not in seen]
        if missing:
            await self._fetch(self._create_sql, missing)
        assignment = assign_roles(members, holders)
        self._hand_off(assignment, settled)
        await self._take(assignment, free)

    def _hand_off(self, assignment: Mapping[str, str], settled: set[str]) -> None:
        for role, lease in self._held.items():
            owner = assignment.get(role, self.member_id)
            if owner != self.member_id and owner in settled and not lease.lost():
                lease._lose(f"handed over to member {owner}")

    async def _take(self, assignment: Mapping[str, str], free: Mapping[str, bool]) -> None:
        mine = [r for r in self._waiting if r in free and assignment.get(r) == self.member_id]
        others = [r for r in self._waiting if free.get(r) and assignment.get(r) != self.member_id]
        if not mine and not others:
            return
        sent = time.monotonic()
        rows = await self._fetch(
            self._acquire_sql, self.member_id, mine, others, self._ttl, self._grace
        )
        deadline = sent + self._ttl - self._margin
        for row in rows:
            role = row["role"]
            fut = self._waiting.pop(role, None)
            lease = PostgresLease(role, row["epoch"], deadline)
            if fut is None or fut.done():  # the waiter gave up meanwhile
                self._held[role] = lease
                asyncio.get_running_loop().create_task(self._release(lease))
                continue
            self._held[role] = lease
            fut.set_result(lease)

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        """Stop renewing, release every role and leave the members. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        for fut in self._waiting.values():
            fut.cancel()
        self._waiting.clear()
        for lease in self._held.values():
            lease._lose("role scheduler closed")
        self._held.clear()
        try:
            if not self._db.closed:
                await self._db.write("leaving the role members", self._leave_sql, self.member_id)
        except AdapterError as exc:
            log.warning("cannot leave the role members (the rows expire): %s", exc)
        finally:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._conn.close(), timeout=2.0)
                self._conn.terminate()
                self._conn = None
