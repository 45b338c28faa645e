"""``RedisRoleScheduler``: roles as expiring Redis keys, spread over the live processes.

A role is the key ``<prefix>:role:<role>`` whose value is the holder's member ID. A
scheduler takes a free role with ``SET key member NX PX role_ttl`` (so two schedulers
never both take it), and renews every role it holds every ``role_renew`` seconds with a
Lua script that extends the key's expiry only if the key still names it (``RENEW``);
releasing is a script that deletes the key only if it still names it (``RELEASE``). It
treats a lease as lost ``role_ttl - margin`` seconds after it *sent* the last renewal that
succeeded (by its own monotonic clock; ``margin`` is a fifth of the TTL): a timer fires
``wait_lost`` then, before the key expires on the server, so two holders never overlap
as long as the clocks run at the same rate. A renewal that finds the key gone, or naming
another member, loses the lease at once. A failed round (Redis unreachable) keeps the
leases until that local deadline; a Redis that is back within the TTL costs no role.

Takeover time. A holder that dies (or cannot reach Redis) stops renewing; its keys expire
at most ``role_ttl`` after its last renewal, and the waiting scheduler the role is then
assigned to takes it at its next round: a role is unheld for at most ``role_ttl +
role_renew`` seconds after its holder died (defaults: 10 + 1; the tests' ``FAST_ROLES``:
3 + 0.25, shown by ``tests/adapters/test_redis_roles.py``). A holder that exits its block
deletes the key in its next round, which starts at once; a waiter in another process takes
it at its own next round, within ``role_renew`` seconds, and a waiter on the same
scheduler at once.

A Redis without persistence that restarts (or a flush of the prefix's keys) loses every
lease at once, and the members hash with them. Until their next renewal the holders do
not know, and a waiter's round that runs first takes the role: two holders may then both
believe they hold it for at most ``role_renew`` seconds (1 s by default), until the old
holder's renewal script finds the key gone or naming the new holder and its lease reports
lost (``wait_lost`` returns). The engine's compare-and-set writes make that overlap
harmless to runs; a holder that must never overlap uses a Redis with persistence
(``appendonly yes``) or replicas with ``WAIT``. The scripts are loaded again after a
restart (``NOSCRIPT``).

Spreading. Each scheduler is a *member*: every round its heartbeat script stamps its entry
in the hash ``<prefix>:members`` with an expiry by the server's clock (``TIME``), the time
it joined and the roles it wants, and returns every live entry (dropping expired ones).
Every member computes the same assignment (``conveyor._kit._spread.assign_roles``, shared
with the other adapters) from the live members and the current holders. A member takes
the free roles assigned to it at once and other free roles only after it has seen them
free for ``role_grace`` seconds (so the assigned member gets them first, and a role whose
assigned member is busy elsewhere still gets a holder). A holder gives up a role assigned
to another live member once that member has been up for ``role_grace`` seconds: its lease
is lost, the engine stops the work, the block exits and the key is deleted. So starting
another process moves its share of the roles to it.

Cost: while a process holds or waits for roles, one round every ``role_renew`` seconds:
the heartbeat script, one pipeline (a renewal per held role, a release per released one,
a ``GET`` per awaited one) and, when it takes roles, one pipeline of ``SET NX``. A
scheduler with nothing to hold or wait for runs no rounds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar

from ..._errors import AdapterError
from ..._kit._lease import DeadlineLease
from ..._kit._signal import Signal
from ..._kit._spread import assign_roles
from ._client import RedisClient, Script

__all__ = ["RedisLease", "RedisRoleScheduler"]

log = logging.getLogger("conveyor.adapters.redis")

RENEW = Script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
)
"""Extend the lease ``KEYS[1]`` to ``ARGV[2]`` ms if member ``ARGV[1]`` holds it: 1, else 0."""

RELEASE = Script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
)
"""Delete the lease ``KEYS[1]`` if member ``ARGV[1]`` holds it: 1, else 0."""

HEARTBEAT = Script(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = now
local mine = redis.call('HGET', KEYS[1], ARGV[1])
if mine then
  since = tonumber(string.match(mine, '^%d+ (%d+) '))
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], (now + tonumber(ARGV[2])) .. ' ' .. since .. ' ' .. ARGV[4])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
local out = {now}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local expires = tonumber(string.match(all[i + 1], '^(%d+) '))
  if expires == nil or expires < now then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
"""
)
"""Stamp member ``ARGV[1]`` (expiry in ``ARGV[2]`` ms, wanted roles ``ARGV[4]`` as JSON) or,
with ``ARGV[3] == '0'``, remove it; then ``[now_ms, member, entry, ...]`` of the live
members (entries are ``"<expires_ms> <joined_ms> <roles JSON>"``), expired ones dropped."""


class RedisLease(DeadlineLease):
    """A held role (``Lease``); ``reason`` tells why it was lost."""

    __slots__ = ()

    EXPIRED: ClassVar[str] = "lease expired (no renewal got through)"


class _Member:
    __slots__ = ("joined", "roles")

    def __init__(self, joined: int, roles: list[str]) -> None:
        self.joined = joined
        self.roles = roles


class RedisRoleScheduler:
    """``RoleScheduler`` on Redis leases (see the module docstring).

    One per process: it is one member. Within the process, holders of one role take turns
    in the order they asked. ``close()`` releases everything and leaves the members.
    """

    def __init__(self, client: RedisClient, *, member_id: str | None = None) -> None:
        options = client.options
        self._client = client
        self._keys = options.keys
        self._ttl = options.role_ttl
        self._ttl_ms = max(1, round(options.role_ttl * 1000))
        self._margin = options.role_ttl / 5
        self._renew = options.role_renew
        self._grace = options.role_grace
        self.member_id: str = member_id or uuid.uuid4().hex
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, asyncio.Future[RedisLease]] = {}
        self._held: dict[str, RedisLease] = {}
        self._releases: set[str] = set()  # roles to delete in the next round
        self._free_since: dict[str, float] = {}  # awaited role -> first seen free (monotonic)
        self._published = False  # whether the members hash may hold our entry
        self._signal = Signal()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ hold

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[RedisLease]:
        """Hold ``role`` for the duration of the ``async with`` block."""
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

    async def _acquire(self, role: str) -> RedisLease:
        if self._closed:
            raise AdapterError("role scheduler is closed")
        fut: asyncio.Future[RedisLease] = asyncio.get_running_loop().create_future()
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

    def _release(self, lease: RedisLease) -> None:
        """Lose the lease now; the next round (started at once) deletes the key."""
        lease._lose("released")
        if self._held.get(lease.role) is lease:
            del self._held[lease.role]
            if not self._closed:
                self._releases.add(lease.role)
                self._signal.fire()

    def _wanted(self) -> list[str]:
        return sorted(set(self._waiting) | set(self._held))

    # ------------------------------------------------------------------ the loop

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"conveyor-redis-roles-{self.member_id[:8]}"
            )

    def _busy(self) -> bool:
        return bool(self._waiting or self._held or self._releases or self._published)

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                generation = self._signal.generation
                if self._busy():
                    try:
                        async with asyncio.timeout(self._ttl / 3):
                            await self._tick()
                        failures = 0
                    except Exception as exc:
                        failures += 1
                        if failures == 1 or failures % 20 == 0:
                            log.warning("role scheduler cannot reach Redis: %s", exc)
                delay: float | None = self._renew
                if failures:
                    delay = min(self._renew, 0.05 * 2**failures)
                elif not self._busy():
                    delay = None  # nothing to renew or look for: sleep until a hold
                await self._signal.wait(delay, generation)
        finally:
            for lease in list(self._held.values()):
                lease._lose("role scheduler stopped")

    async def _tick(self) -> None:
        wanted = self._wanted()
        now_ms, members = await self._heartbeat(wanted)
        held = sorted(self._held)
        releases = sorted(self._releases)
        waiting = sorted(self._waiting)
        keys = self._keys
        me = self.member_id
        commands: list[tuple[object, ...]] = []
        commands += [("EVALSHA", RENEW.sha, 1, keys.role(r), me, self._ttl_ms) for r in held]
        commands += [("EVALSHA", RELEASE.sha, 1, keys.role(r), me) for r in releases]
        commands += [("GET", keys.role(r)) for r in waiting]
        sent = time.monotonic()
        replies = await self._client.pipeline("renewing roles", commands, (RENEW, RELEASE))
        renewed = replies[: len(held)]
        released = replies[len(held) : len(held) + len(releases)]
        looked = replies[len(held) + len(releases) :]
        for role, reply in zip(releases, released, strict=True):
            if not isinstance(reply, Exception):
                self._releases.discard(role)
        holders: dict[str, str] = {}
        deadline = sent + self._ttl - self._margin
        for role, reply in zip(held, renewed, strict=True):
            lease = self._held.get(role)
            if lease is None or isinstance(reply, Exception):
                continue  # released meanwhile; or kept until its deadline
            if reply == 1:
                lease._extend(deadline)
                holders[role] = me
            else:
                lease._lose("lease lost: the key expired, vanished or names another holder")
        free: list[str] = []
        ours: set[str] = set()
        for role, reply in zip(waiting, looked, strict=True):
            if isinstance(reply, Exception):
                continue
            holder = _text(reply)
            if holder is None or holder == me:  # ours: a release that did not get through
                free.append(role)
                if holder == me:
                    ours.add(role)
                self._free_since.setdefault(role, sent)
            else:
                holders[role] = holder
                self._free_since.pop(role, None)
        for role in list(self._free_since):
            if role not in self._waiting:
                del self._free_since[role]
        wants = {member: m.roles for member, m in members.items()}
        wants[me] = wanted
        assignment = assign_roles(wants, holders)
        settled = {m for m, info in members.items() if info.joined + self._grace * 1000 <= now_ms}
        self._hand_off(assignment, settled)
        await self._take(assignment, free, ours, sent)

    async def _heartbeat(self, wanted: list[str]) -> tuple[int, dict[str, _Member]]:
        stay = bool(self._waiting or self._held)
        reply = await self._client.run(
            "renewing role membership",
            HEARTBEAT,
            [self._keys.members],
            [self.member_id, self._ttl_ms, "1" if stay else "0", json.dumps(wanted)],
        )
        self._published = stay
        now_ms = int(reply[0])
        members: dict[str, _Member] = {}
        for i in range(1, len(reply) - 1, 2):
            member = _text(reply[i]) or ""
            entry = _member(reply[i + 1])
            if member and entry is not None:
                members[member] = entry
        return now_ms, members

    def _hand_off(self, assignment: Mapping[str, str], settled: set[str]) -> None:
        for role, lease in self._held.items():
            owner = assignment.get(role, self.member_id)
            if owner != self.member_id and owner in settled and not lease.lost():
                lease._lose(f"handed over to member {owner}")

    async def _take(
        self, assignment: Mapping[str, str], free: Sequence[str], ours: set[str], sent: float
    ) -> None:
        me = self.member_id
        candidates = [
            role
            for role in free
            if role in self._waiting
            and (assignment.get(role) == me or sent - self._free_since[role] >= self._grace)
        ]
        if not candidates:
            return
        keys = self._keys
        # A key that still names us (a release that did not get through) is renewed instead.
        commands = [
            ("EVALSHA", RENEW.sha, 1, keys.role(r), me, self._ttl_ms)
            if r in ours
            else ("SET", keys.role(r), me, "NX", "PX", self._ttl_ms)
            for r in candidates
        ]
        sent = time.monotonic()
        replies = await self._client.pipeline("taking roles", commands, (RENEW,))
        deadline = sent + self._ttl - self._margin
        for role, reply in zip(candidates, replies, strict=True):
            if isinstance(reply, Exception) or not reply:
                continue
            self._free_since.pop(role, None)
            lease = RedisLease(role, deadline)
            self._held[role] = lease
            fut = self._waiting.pop(role, None)
            if fut is None or fut.done():  # the waiter gave up meanwhile
                self._release(lease)
                continue
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
            if not fut.done():
                fut.set_exception(AdapterError("role scheduler is closed"))
        self._waiting.clear()
        roles = sorted(set(self._held) | self._releases)
        for lease in self._held.values():
            lease._lose("role scheduler closed")
        self._held.clear()
        self._releases.clear()
        if not (roles or self._published):
            return
        me = self.member_id
        commands: list[tuple[object, ...]] = [
            ("EVALSHA", RELEASE.sha, 1, self._keys.role(r), me) for r in roles
        ]
        commands.append(("HDEL", self._keys.members, me))
        try:
            async with asyncio.timeout(max(2.0, self._renew)):
                await self._client.pipeline("releasing roles", commands, (RELEASE,))
        except Exception as exc:  # the keys expire by themselves
            log.warning("cannot release roles (their leases expire): %s", exc)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _member(value: object) -> _Member | None:
    """A members hash entry ``"<expires_ms> <joined_ms> <roles JSON>"``; None if unreadable."""
    text = _text(value) or ""
    parts = text.split(" ", 2)
    if len(parts) != 3:
        return None
    try:
        joined = int(parts[1])
        roles = json.loads(parts[2])
    except ValueError:
        return None
    if not isinstance(roles, list):
        return None
    return _Member(joined, [r for r in roles if isinstance(r, str)])
