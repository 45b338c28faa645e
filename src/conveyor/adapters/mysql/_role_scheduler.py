"""``MySQLRoleScheduler``: roles as leases in a table, spread over the live processes.

Leases, not ``GET_LOCK``: a named lock lives as long as its connection, and the
connection of a machine that died lasts on the server until ``wait_timeout`` (8 hours by
default); a lease row simply expires. A role is a row ``(role, holder, expires_at,
epoch)`` whose expiry is set by the database's clock (``UTC_TIMESTAMP(6)``), so the
processes' clocks never matter. A scheduler takes free roles (``expires_at`` past) in one
short transaction that locks their rows (``SELECT ... FOR UPDATE``), so two schedulers
never both take a role, and renews every role it holds, with its membership in the same
statement, every ``role_renew`` seconds. It treats a lease as lost ``role_ttl - margin``
seconds after it *sent* the last renewal that succeeded (by its own monotonic clock;
``margin`` is a fifth of the TTL): a timer fires ``wait_lost`` then, before the row
expires for anyone else, so two holders never overlap as long as the clocks run at the
same rate. A round that finds
the row taken loses the lease at once. Nothing is tied to a connection: the scheduler
has one connection of its own (so a busy pool never delays a renewal), replaced after
any failure (a ``KILL``, a server restart); a restart shorter than the TTL costs no
role. Each round is bounded to ``role_ttl / 3`` seconds, and the session waits at most
one second for a row lock. A process frozen past its deadline finds its leases lost
when it runs again; compare-and-set writes make any overlap harmless to the data.
``epoch`` counts acquisitions: a fencing token for user code.

Takeover time. A holder that dies (or cannot reach the database) stops renewing; its
leases expire at most ``role_ttl`` after its last renewal, and its member row with them
(one statement renews both, to one expiry), so the waiting scheduler the role is then
assigned to takes it at its next round: a role is unheld for at most
``role_ttl + role_renew`` seconds after its holder died (defaults: 10 + 1; the
``FAST_ROLES`` of the tests: 3 + 0.25, shown by ``tests/adapters/test_mysql_roles.py``).
A holder that exits its block releases the row in its next round, which starts at once;
a waiter in another process takes it at its own next round, within ``role_renew``
seconds (MySQL cannot notify other processes), and a waiter on the same scheduler at
once.

Spreading. Each scheduler is a *member* with a heartbeat (its round) and the list of
roles it wants. Every member computes the same assignment (``conveyor.abc.kit``'s
``assign_roles``, shared with the other adapters) from the live members and the current
holders: each holder keeps up to its fair share of its roles, the rest go in name order
to the least-loaded member that wants them. A member takes the free roles assigned to it
at once and other free roles only after they stayed free for ``role_grace`` seconds (so
the assigned member gets them first, and a role whose assigned member is busy elsewhere
still gets a holder). A holder gives up a role assigned to another live member once that
member has been up for ``role_grace`` seconds: its lease is lost, the engine stops the
work, the block exits and the row is released. So starting another process moves its
share of the roles to it.

Cost: while a process holds or waits for roles, one round every ``role_renew`` seconds
(1 s): two statements (the heartbeat with the renewal, one look at members and roles),
plus a short transaction when it takes roles and one statement per release. A scheduler
with nothing to hold or wait for runs no rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from ..._errors import AdapterError
from ..._kit._lease import DeadlineLease
from ..._kit._spread import assign_roles
from ._database import Connection, Cursor, Database
from ._errors import translate
from ._role_sql import RoleSQL

__all__ = ["MAX_ROLE_CHARS", "MySQLLease", "MySQLRoleScheduler"]

log = logging.getLogger("conveyor.adapters.mysql")

MAX_ROLE_CHARS = 512
"""The longest role name (the ``roles`` table's key)."""

_LOCK_WAIT = "SET SESSION innodb_lock_wait_timeout = 1"


class MySQLLease(DeadlineLease):
    """A held role. ``epoch`` increases with every acquisition of the role (a fencing token)."""

    __slots__ = ("epoch",)

    def __init__(self, role: str, epoch: int, deadline: float) -> None:
        self.epoch: int = epoch
        super().__init__(role, deadline)


class MySQLRoleScheduler:
    """``RoleScheduler`` on MySQL/MariaDB leases (see the module docstring).

    One per process: it is one member. Within the process, holders of one role take
    turns in the order they asked. ``close()`` releases everything and leaves. Raises
    ``AdapterError`` for a role name longer than ``MAX_ROLE_CHARS``.
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
        self._waiting: dict[str, asyncio.Future[MySQLLease]] = {}
        self._held: dict[str, MySQLLease] = {}
        self._releases: dict[str, int] = {}  # role -> epoch, to free in the next round
        self._published: list[str] = []  # ``wanted`` as the members table has it
        self._signal = db.signal("r:")
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._sql = RoleSQL(db.tables, self._ttl, self._grace)

    # ------------------------------------------------------------------ hold

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[MySQLLease]:
        if len(role) > MAX_ROLE_CHARS:
            raise AdapterError(
                f"role name of {len(role)} characters: at most {MAX_ROLE_CHARS} are allowed"
            )
        lock = self._locks.get(role)
        if lock is None:
            lock = self._locks[role] = asyncio.Lock()
        async with lock:
            lease = await self._acquire(role)
            try:
                yield lease
            finally:
                self._release(lease)

    def held_roles(self) -> list[str]:
        """The roles this scheduler holds now."""
        return sorted(r for r, lease in self._held.items() if not lease.lost())

    async def _acquire(self, role: str) -> MySQLLease:
        if self._closed:
            raise AdapterError("role scheduler is closed")
        fut: asyncio.Future[MySQLLease] = asyncio.get_running_loop().create_future()
        self._waiting[role] = fut
        self._start()
        self._signal.fire()
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if self._waiting.get(role) is fut:
                del self._waiting[role]
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(fut.result())  # granted just as we were cancelled
            else:
                fut.cancel()
            self._signal.fire()  # tell the others we no longer want it
            raise

    def _release(self, lease: MySQLLease) -> None:
        """Lose the lease now; the next round (started at once) frees the row."""
        lease._lose("released")
        if self._held.get(lease.role) is lease:
            del self._held[lease.role]
            if not self._closed:
                self._releases[lease.role] = lease.epoch
                self._signal.fire()

    def _wanted(self) -> list[str]:
        return sorted(set(self._waiting) | set(self._held))

    # ------------------------------------------------------------------ the loop

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"conveyor-mysql-roles-{self.member_id[:8]}"
            )

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                generation = self._signal.generation
                busy = bool(self._waiting or self._held or self._releases)
                if busy or self._published:
                    try:
                        async with asyncio.timeout(self._ttl / 3):
                            await self._tick()
                        failures = 0
                    except asyncio.CancelledError:
                        self._drop_connection()  # perhaps cancelled mid-statement
                        raise
                    except Exception as exc:
                        self._drop_connection()
                        failures += 1
                        if failures == 1 or failures % 20 == 0:
                            log.warning("role scheduler cannot reach the database: %s", exc)
                delay: float | None = self._renew
                if failures:
                    delay = min(self._renew, 0.05 * 2**failures)
                elif not (self._waiting or self._held or self._releases or self._published):
                    delay = None  # nothing to renew or look for: sleep until a hold
                await self._signal.wait(delay, generation)
        finally:
            for lease in list(self._held.values()):
                lease._lose("role scheduler stopped")

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or not conn.connected:
            self._drop_connection()
            conn = await self._db.connect()
            try:
                async with conn.cursor() as cur:
                    await cur.execute(_LOCK_WAIT)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()  # its state is unknown after a failure: start afresh
            self._conn = None

    async def _tick(self) -> None:
        conn = await self._connection()
        me = self.member_id
        sent = time.monotonic()
        held = sorted(self._held)
        releases = dict(self._releases)
        sql = self._sql
        try:
            async with conn.cursor() as cur:
                wanted = self._wanted()
                encoded = json.dumps(wanted)
                beat = sql.heartbeat(held)
                if not await cur.execute(beat, (*held, encoded, me)):
                    # No member row yet (or it was pruned after a long pause): join.
                    await cur.execute(sql.join, (me, encoded, encoded))
                    if held:
                        await cur.execute(beat, (*held, encoded, me))
                for role, epoch in releases.items():
                    await cur.execute(sql.release, (role, me, epoch))
                await cur.execute(sql.look(wanted), (me, *wanted))
                rows = list(await cur.fetchall())
        except Exception as exc:
            raise translate(exc, "renewing roles", self._db.url) from exc
        self._published = wanted
        for role, epoch in releases.items():
            if self._releases.get(role) == epoch:
                del self._releases[role]
        await self._after_look(conn, rows, held, sent)

    async def _after_look(
        self, conn: Connection, rows: list[tuple[Any, ...]], held: list[str], sent: float
    ) -> None:
        me = self.member_id
        members: dict[str, list[str]] = {me: self._published}
        settled: set[str] = set()
        holders: dict[str, str] = {}
        waiting = sorted(self._waiting)
        # Waiting roles that are free -> whether free for longer than the grace period. A
        # role without a row yet is free since ever; a stale row of ours (a release that
        # did not get through) is ours to take again.
        free: dict[str, bool] = dict.fromkeys(waiting, True)
        seen: set[str] = set()
        for kind, name, value, flag, long_flag in rows:
            if kind == "member":
                members[name] = _roles(value)
                if flag:
                    settled.add(name)
                continue
            seen.add(name)
            if value is not None:
                holders[name] = value
            if name in free and not flag and value != me:
                del free[name]
            elif name in free and value != me:
                free[name] = bool(long_flag)
        deadline = sent + self._ttl - self._margin
        for role in held:
            lease = self._held.get(role)
            if lease is None:
                continue  # released meanwhile
            if holders.get(role) == me:
                lease._extend(deadline)
            else:
                lease._lose("taken over (the lease had expired)")
        missing = [r for r in waiting if r not in seen]
        if missing:
            async with conn.cursor() as cur:
                await cur.execute(self._sql.create(missing), missing)
        assignment = assign_roles(members, holders)
        self._hand_off(assignment, settled)
        await self._take(conn, assignment, free)

    def _hand_off(self, assignment: Mapping[str, str], settled: set[str]) -> None:
        for role, lease in self._held.items():
            owner = assignment.get(role, self.member_id)
            if owner != self.member_id and owner in settled and not lease.lost():
                lease._lose(f"handed over to member {owner}")

    async def _take(
        self, conn: Connection, assignment: Mapping[str, str], free: Mapping[str, bool]
    ) -> None:
        me = self.member_id
        mine = {r for r in self._waiting if r in free and assignment.get(r) == me}
        others = {r for r in self._waiting if free.get(r) and assignment.get(r) != me}
        wanted = sorted(mine | others)
        if not wanted:
            return
        async with conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                taken, sent = await self._take_rows(cur, wanted, mine)
                await cur.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.rollback())
                raise
        deadline = sent + self._ttl - self._margin
        for role, epoch in taken:
            lease = MySQLLease(role, epoch, deadline)
            self._held[role] = lease
            fut = self._waiting.pop(role, None)
            if fut is None or fut.done():  # the waiter gave up meanwhile
                self._release(lease)
                continue
            fut.set_result(lease)

    async def _take_rows(
        self, cur: Cursor, candidates: list[str], mine: set[str]
    ) -> tuple[list[tuple[str, int]], float]:
        """In the open transaction: lock the candidates' rows, take the free ones."""
        await cur.execute(self._sql.lock(candidates), candidates)
        taken: list[tuple[str, int]] = []
        for role, holder, expired, long_expired, epoch in await cur.fetchall():
            if holder == self.member_id or (expired if role in mine else long_expired):
                taken.append((role, int(epoch) + 1))
        sent = time.monotonic()
        if taken:
            roles = [r for r, _ in taken]
            await cur.execute(self._sql.take(roles), (self.member_id, *roles))
        return taken, sent

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
            if not fut.done():
                fut.set_exception(AdapterError("role scheduler is closed"))
        self._waiting.clear()
        for lease in self._held.values():
            lease._lose("role scheduler closed")
        self._held.clear()
        touched = bool(self._published or self._releases or self._conn is not None)
        self._releases.clear()
        try:
            if touched:
                async with asyncio.timeout(max(2.0, self._renew)):
                    conn = await self._connection()
                    async with conn.cursor() as cur:
                        for statement in self._sql.leave:
                            await cur.execute(statement, (self.member_id,))
        except Exception as exc:  # the rows expire by themselves
            log.warning("cannot leave the role members (the rows expire): %s", exc)
        finally:
            self._drop_connection()


def _roles(value: object) -> list[str]:
    """A member's ``wanted`` column (a JSON array of role names); [] if unreadable."""
    try:
        roles = json.loads(value if isinstance(value, str | bytes) else "[]")
    except ValueError:
        return []
    return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
