"""``NatsRoleScheduler``: roles as keys of a JetStream key-value bucket, spread over the
live processes.

The bucket ``P_roles`` keeps one revision per key and has a TTL of ``role_ttl``
(``max_age``): a key not written for that long disappears, by the server's clock. A role
is the key ``r.<role token>`` (``_names``) holding the holder's member ID. Taking it is
``create`` (refused while any revision of the key exists), renewing it ``update`` with the
revision the holder wrote last (refused once the key expired or anyone else wrote it),
releasing it ``delete`` with that revision: compare-and-set throughout, so two schedulers
never both take a role. A holder treats its lease as lost ``role_ttl - role_ttl / 5``
after it *sent* the last write that succeeded (its monotonic clock); the key expires
``role_ttl`` after the server *stored* it, later, so two holders never overlap as long as
clocks run at the same rate. The revision of the take is the lease's ``epoch`` (it only
grows: a fencing token).

Each scheduler is a member ``m.<member ID>`` (its list of wanted roles, rewritten every
``role_renew`` with the renewals). Every member follows the bucket with an ordered
consumer (a watch of every key), so a release or a new member is seen at once; a key not
seen written for ``role_ttl`` counts as expired (an expiry by TTL writes no marker). From
the live members and holders every member computes the same assignment with the shared
``assign_roles``: free roles assigned to it are taken at once, others once they stayed
free for ``role_grace``; a role held but assigned to another member that has been up for
``role_grace`` is given up (its lease lost, the engine stops the work, the key deleted).

Takeover time: a holder that dies stops renewing; its keys expire ``role_ttl`` after its
last renewal, which the watchers do not see (no marker): a waiter takes the role at the
first round after its view of the key is ``role_ttl`` old, at most ``role_ttl +
role_renew`` after the holder's last renewal. A holder that exits its block deletes the key
at once and the waiters, woken by their watch, take it within a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from ..._errors import AdapterError
from ..._kit._lease import DeadlineLease
from ..._kit._spread import assign_roles
from ._connection import NatsConnection
from ._errors import translate
from ._names import escape, roles_bucket

__all__ = ["NatsLease", "NatsRoleScheduler"]

log = logging.getLogger("conveyor.adapters.nats")

_OP = "KV-Operation"


class NatsLease(DeadlineLease):
    """A held role. ``epoch`` is the revision of the key when it was taken (it only grows)."""

    __slots__ = ("epoch", "revision")

    def __init__(self, role: str, revision: int, deadline: float) -> None:
        self.epoch: int = revision
        self.revision: int = revision
        """The revision this holder wrote last (what its next renewal compares with)."""
        super().__init__(role, deadline)

    def _renewed(self, revision: int, deadline: float) -> None:
        """A renewal wrote ``revision``: the lease holds until ``deadline``."""
        self.revision = revision
        self._extend(deadline)


class _Seen:
    __slots__ = ("at", "revision", "value")

    def __init__(self, value: bytes, revision: int, at: float) -> None:
        self.value = value
        self.revision = revision
        self.at = at


class NatsRoleScheduler:
    """``RoleScheduler`` on a JetStream key-value bucket (see the module docstring).

    One per process: it is one member. Within the process, holders of one role take turns
    in the order they asked. ``close()`` releases everything and leaves.
    """

    def __init__(
        self, connection: NatsConnection | str, *, member_id: str | None = None, **options: Any
    ) -> None:
        if isinstance(connection, str):
            self._conn = NatsConnection(connection, **options)
            self._owns = True
        else:
            if options:
                raise TypeError("options go to the NatsConnection, not the role scheduler")
            self._conn = connection
            self._owns = False
        settings = self._conn.options
        self._ttl = settings.role_ttl
        self._margin = settings.role_ttl / 5
        self._renew = settings.role_renew
        self._grace = settings.role_grace
        self.member_id: str = member_id or uuid.uuid4().hex
        self._bucket = roles_bucket(settings.prefix)
        self._kv: KeyValue | None = None
        self._watch: Any = None
        self._view: dict[str, _Seen] = {}
        self._first_seen: dict[str, float] = {}  # member -> when this one first saw it
        self._free_since: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, asyncio.Future[NatsLease]] = {}
        self._held: dict[str, NatsLease] = {}
        self._releases: dict[str, NatsLease] = {}  # released: delete in the next round
        self._joined = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ hold

    @asynccontextmanager
    async def hold(self, role: str) -> AsyncIterator[NatsLease]:
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

    async def _acquire(self, role: str) -> NatsLease:
        if self._closed:
            raise AdapterError("role scheduler is closed")
        fut: asyncio.Future[NatsLease] = asyncio.get_running_loop().create_future()
        self._waiting[role] = fut
        self._start()
        self._wake.set()
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if self._waiting.get(role) is fut:
                del self._waiting[role]
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(fut.result())  # granted just as we were cancelled
            else:
                fut.cancel()
            self._wake.set()
            raise

    def _release(self, lease: NatsLease) -> None:
        lease._lose("released")
        if self._held.get(lease.role) is lease:
            del self._held[lease.role]
            if not self._closed:
                self._releases[lease.role] = lease
                self._wake.set()

    def _wanted(self) -> list[str]:
        return sorted(set(self._waiting) | set(self._held))

    # ------------------------------------------------------------------ the bucket

    async def _bucket_kv(self) -> KeyValue:
        if self._kv is not None:
            return self._kv
        _, js = await self._conn.client()
        options = self._conn.options
        try:
            try:
                info = await js.stream_info(f"KV_{self._bucket}")
                max_age = info.config.max_age or 0.0
                if abs(max_age - self._ttl) > 1e-3:
                    raise AdapterError(
                        f"key-value bucket {self._bucket!r} expires keys after {max_age}s, "
                        f"not role_ttl={self._ttl}s: use the same role_ttl everywhere (or "
                        "another prefix)"
                    )
                kv = await js.key_value(self._bucket)
            except nats.js.errors.NotFoundError:
                kv = await js.create_key_value(
                    KeyValueConfig(
                        bucket=self._bucket,
                        description="conveyor roles",
                        history=1,
                        ttl=self._ttl,
                        storage=(
                            StorageType.MEMORY if options.storage == "memory" else StorageType.FILE
                        ),
                        replicas=options.replicas,
                    )
                )
            self._watch = await js.subscribe(
                f"$KV.{self._bucket}.>",
                stream=f"KV_{self._bucket}",
                cb=self._on_entry,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                inactive_threshold=60.0,
            )
        except AdapterError:
            raise
        except Exception as exc:
            raise translate(
                exc, f"opening key-value bucket {self._bucket!r}", self._conn.url
            ) from exc
        self._kv = kv
        return kv

    async def _on_entry(self, msg: Msg) -> None:
        key = msg.subject[len(f"$KV.{self._bucket}.") :]
        op = (msg.headers or {}).get(_OP)
        if op in ("DEL", "PURGE"):
            self._view.pop(key, None)
            self._wake.set()  # a release: a waiter may take it now
            return
        try:
            revision = msg.metadata.sequence.stream
        except Exception:
            return
        known = self._view.get(key)
        self._view[key] = _Seen(msg.data, revision, time.monotonic())
        if known is None or known.value != msg.data:
            self._wake.set()

    def _live(self, prefix: str) -> dict[str, _Seen]:
        """Keys under ``prefix`` seen written within ``role_ttl`` (else they expired)."""
        now = time.monotonic()
        cut = len(prefix)
        return {
            key[cut:]: seen
            for key, seen in self._view.items()
            if key.startswith(prefix) and now - seen.at < self._ttl
        }

    # ------------------------------------------------------------------ the loop

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"conveyor-nats-roles-{self.member_id[:8]}"
            )

    async def _run(self) -> None:
        failures = 0
        task = asyncio.current_task()
        try:
            # nats-py's requests await asyncio.wait_for, which on Python 3.11 can swallow a
            # cancellation that arrives as the answer does: the loop also stops on
            # ``cancelling()`` and on ``_closed``, so close() never waits on a lost cancel.
            while not self._closed and not (task is not None and task.cancelling()):
                self._wake.clear()
                busy = bool(self._waiting or self._held or self._releases)
                if busy or self._joined:
                    try:
                        async with asyncio.timeout(self._ttl / 3):
                            await self._tick()
                        failures = 0
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        failures += 1
                        if failures == 1 or failures % 20 == 0:
                            log.warning("role scheduler cannot reach NATS: %s", exc)
                delay: float | None = self._renew
                if failures:
                    delay = min(self._renew, 0.05 * 2**failures)
                elif not (self._waiting or self._held or self._releases or self._joined):
                    delay = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        finally:
            for lease in list(self._held.values()):
                lease._lose("role scheduler stopped")

    async def _tick(self) -> None:
        kv = await self._bucket_kv()
        me = self.member_id
        wanted = self._wanted()
        sent = time.monotonic()
        try:
            if wanted:
                await kv.put(f"m.{me}", json.dumps(wanted).encode())
                self._joined = True
            elif self._joined:
                await kv.delete(f"m.{me}")
                self._joined = False
            for role, lease in list(self._held.items()):
                try:
                    revision = await kv.update(
                        f"r.{escape(role)}", me.encode(), last=lease.revision
                    )
                except nats.js.errors.APIError as exc:
                    if not _wrong_revision(exc):
                        raise
                    lease._lose("taken over (the lease had expired)")
                    self._held.pop(role, None)
                    continue
                lease._renewed(revision, sent + self._ttl - self._margin)
            for role, released in list(self._releases.items()):
                await _delete(kv, f"r.{escape(role)}", released.revision)
                if self._releases.get(role) is released:
                    del self._releases[role]
        except Exception as exc:
            raise translate(exc, "renewing roles", self._conn.url) from exc
        await self._look_and_take(kv)

    def _members(self, now: float) -> dict[str, list[str]]:
        """Every live member's wanted roles, this one's included."""
        me = self.member_id
        members: dict[str, list[str]] = {me: self._wanted()}
        for member, seen in self._live("m.").items():
            if member == me:
                continue
            self._first_seen.setdefault(member, now)
            try:
                roles = json.loads(seen.value)
            except ValueError:
                roles = []
            if not isinstance(roles, list):
                roles = []
            members[member] = [r for r in roles if isinstance(r, str)]
        return members

    async def _look_and_take(self, kv: KeyValue) -> None:
        me = self.member_id
        now = time.monotonic()
        members = self._members(now)
        settled = {m for m, t in self._first_seen.items() if now - t >= self._grace}
        live_roles = self._live("r.")
        holders: dict[str, str] = {}
        free: dict[str, bool] = {}  # waiting role -> free for longer than the grace
        for role in sorted(set(self._waiting) | set(self._held)):
            seen = live_roles.get(escape(role))
            holder = None if seen is None else seen.value.decode(errors="replace")
            if holder is not None:
                holders[role] = holder
            if role not in self._waiting:
                continue
            if holder is None or holder == me:
                since = self._free_since.setdefault(role, now)
                free[role] = now - since >= self._grace
            else:
                self._free_since.pop(role, None)
        assignment = assign_roles(members, holders)
        for role, lease in list(self._held.items()):
            owner = assignment.get(role, me)
            if owner != me and owner in settled and not lease.lost():
                lease._lose(f"handed over to member {owner}")
        for role in sorted(free):
            if assignment.get(role) == me or free[role]:
                await self._take(kv, role)

    async def _take(self, kv: KeyValue, role: str) -> None:
        """Take ``role`` if nobody holds it (``create``) and hand it to its waiter."""
        fut = self._waiting.get(role)
        if fut is None or fut.done():
            return
        sent = time.monotonic()
        try:
            revision = await kv.create(f"r.{escape(role)}", self.member_id.encode())
        except nats.js.errors.APIError as exc:
            if _wrong_revision(exc):
                return  # held after all (our view was late)
            raise translate(exc, f"taking role {role!r}", self._conn.url) from exc
        except Exception as exc:
            raise translate(exc, f"taking role {role!r}", self._conn.url) from exc
        lease = NatsLease(role, revision, sent + self._ttl - self._margin)
        self._held[role] = lease
        self._free_since.pop(role, None)
        fut = self._waiting.pop(role, None)
        if fut is None or fut.done():
            self._release(lease)
            return
        fut.set_result(lease)

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        """Stop renewing, release every role and leave the members. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._wake.set()
            self._task.cancel()
            await asyncio.wait({self._task})
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(AdapterError("role scheduler is closed"))
        self._waiting.clear()
        releases = {role: lease.revision for role, lease in self._releases.items()}
        for role, lease in self._held.items():
            lease._lose("role scheduler closed")
            releases[role] = lease.revision
        self._held.clear()
        self._releases.clear()
        kv = self._kv
        try:
            if kv is not None:
                async with asyncio.timeout(max(2.0, self._renew)):
                    for role, revision in releases.items():
                        await _delete(kv, f"r.{escape(role)}", revision)
                    if self._joined:
                        await kv.delete(f"m.{self.member_id}")
        except Exception as exc:  # the keys expire by themselves
            log.warning("cannot release roles on close (they expire): %s", exc)
        watch, self._watch = self._watch, None
        if watch is not None:
            with contextlib.suppress(Exception):
                await watch.unsubscribe()
        if self._owns:
            await self._conn.close()


_WRONG_LAST = (10071, 10164)


def _wrong_revision(exc: nats.js.errors.APIError) -> bool:
    """Whether a compare-and-set write was refused (the key is at another revision)."""
    return isinstance(exc, nats.js.errors.KeyWrongLastSequenceError) or exc.err_code in _WRONG_LAST


async def _delete(kv: KeyValue, key: str, revision: int) -> None:
    """Delete ``key`` if it is still at ``revision`` (else someone else holds it now)."""
    try:
        await kv.delete(key, last=revision)
    except nats.js.errors.APIError as exc:
        if not _wrong_revision(exc):
            raise
