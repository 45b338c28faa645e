"""``RedisTimeoutStore``: timeouts in Redis, a sorted set per workflow and status by expiry.

A timeout is a hash (``P:timeout:<id>``), its ID taken from a counter (``INCR``, from 1
per key prefix). The uncompleted ones are in two sorted sets: the workflow's by ID (what
``list`` reads) and the workflow and status's by ``expire_at`` in microseconds
(``list_valid`` is ``ZRANGEBYSCORE -inf <now>``, ``next_expiry`` its first member). A hash
of idempotency keys (workflow, run ID, status, record version, index) makes a repeated
``create`` return the first ID, completed or not; ``cancel`` removes the timeout and its
key. Each operation is one Lua script, so a timeout and its indexes never disagree. Key
layout: ``_record_keys``.

``wait_for_insert`` blocks in ``XREAD`` on a stream of one entry per workflow, which every
``create`` appends to (``MAXLEN 1``): it returns the moment a timeout is created, in this
process or another (the server unblocks the read as the script's ``XADD`` runs). It reads
the stream's last entry first, then waits for the next one, so a create between the two
is not missed; a create of this process also fires a local signal, which covers one whose
entry the first read already saw (the wait then returns within ``_GRACE``).

Durability is Redis's: see ``_record_store``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from ..._errors import AdapterError, TimeoutNotFound
from ..._kit._signal import Signal
from ..._protocols import TimeoutRecord
from .._listing import from_us, to_us
from ._client import RedisClient, Script, open_client
from ._record_keys import TimeoutKeys
from ._store_waits import Waiters

__all__ = ["RedisTimeoutStore"]

_FIELDS: Final = (
    "workflow_name",
    "foreign_id",
    "run_id",
    "status",
    "expire_at",
    "created_at",
    "completed",
    "version",
    "index",
)

_GRACE: Final = 0.05
"""Seconds a wait woken by a create of this process gives its read to return by itself
(a cancelled read costs its connection)."""

_CREATE = Script(
    r"""#!lua
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return tonumber(existing) end
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', ARGV[10] .. id, 'workflow_name', ARGV[2], 'foreign_id', ARGV[3],
  'run_id', ARGV[4], 'status', ARGV[5], 'expire_at', ARGV[6], 'created_at', ARGV[7],
  'completed', '0', 'version', ARGV[8], 'index', ARGV[9],
  'wk', KEYS[3], 'dk', KEYS[4], 'kk', KEYS[2], 'kf', ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('ZADD', KEYS[3], id, id)
redis.call('ZADD', KEYS[4], ARGV[6], id)
redis.call('XADD', KEYS[5], 'MAXLEN', '1', '*', 'id', id)
return id
"""
)
"""Create a timeout unless its idempotency key (``ARGV[1]``) is known; its ID."""

_COMPLETE = Script(
    r"""#!lua
local t = redis.call('HMGET', KEYS[1], 'wk', 'dk')
if not t[1] then return 0 end
redis.call('HSET', KEYS[1], 'completed', '1')
redis.call('ZREM', t[1], ARGV[1])
redis.call('ZREM', t[2], ARGV[1])
return 1
"""
)
"""Mark timeout ``KEYS[1]`` (ID ``ARGV[1]``) completed; 0 if there is none."""

_CANCEL = Script(
    r"""#!lua
local t = redis.call('HMGET', KEYS[1], 'wk', 'dk', 'kk', 'kf')
if not t[1] then return 0 end
redis.call('ZREM', t[1], ARGV[1])
redis.call('ZREM', t[2], ARGV[1])
redis.call('HDEL', t[3], t[4])
redis.call('DEL', KEYS[1])
return 1
"""
)
"""Remove timeout ``KEYS[1]`` (ID ``ARGV[1]``) and its idempotency key; 0 if none."""


def _timeout(id: int, values: Sequence[bytes | None]) -> TimeoutRecord:
    wf, fid, run_id, status, expire_at, created_at, completed, version, index = values
    return TimeoutRecord(
        id=id,
        workflow_name=(wf or b"").decode(),
        foreign_id=(fid or b"").decode(),
        run_id=(run_id or b"").decode(),
        status=int(status or 0),
        expire_at=from_us(int(expire_at or 0)),
        created_at=from_us(int(created_at or 0)),
        completed=completed == b"1",
        record_version=int(version or 0),
        index=int(index or 0),
    )


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a read abandoned by a wait that returned: its outcome is not wanted


class RedisTimeoutStore:
    """``TimeoutStore`` on Redis (see the module docstring).

    ``client`` is shared (closing the store does not close it) unless ``owns_client``.
    Keys are under the client's ``key_prefix``.
    """

    def __init__(self, client: RedisClient, *, owns_client: bool = False) -> None:
        self._client = client
        self._owns_client = owns_client
        self._keys = TimeoutKeys(client.options.key_prefix)
        self._waiters = Waiters(client)
        self._inserted: dict[str, Signal] = {}
        self._closed = False

    @classmethod
    def open(cls, url: str, **options: Any) -> RedisTimeoutStore:
        """A store on its own client for ``url`` (options as ``open_client``'s)."""
        return cls(open_client(url, **options), owns_client=True)

    def __repr__(self) -> str:
        return f"RedisTimeoutStore({self._client!r})"

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
        keys = self._keys
        key = f"{int(status)}:{int(record_version)}:{int(index)}:{run_id}"
        id = await self._client.run(
            "creating a timeout",
            _CREATE,
            (
                keys.sequence,
                keys.idempotency(workflow_name),
                keys.workflow(workflow_name),
                keys.due(workflow_name, status),
                keys.inserts(workflow_name),
            ),
            (
                key,
                workflow_name,
                foreign_id,
                run_id,
                int(status),
                to_us(expire_at),
                to_us(created_at),
                int(record_version),
                int(index),
                keys.prefix + "timeout:",
            ),
        )
        signal = self._inserted.get(workflow_name)
        if signal is not None:
            signal.fire()
        return int(id)

    async def complete(self, id: int) -> None:
        if not await self._client.run(
            "completing a timeout", _COMPLETE, (self._keys.timeout(id),), (id,)
        ):
            raise TimeoutNotFound(f"timeout not found: id={id}")

    async def cancel(self, id: int) -> None:
        if not await self._client.run(
            "cancelling a timeout", _CANCEL, (self._keys.timeout(id),), (id,)
        ):
            raise TimeoutNotFound(f"timeout not found: id={id}")

    async def list(self, workflow_name: str) -> Sequence[TimeoutRecord]:
        ids = await self._client.command(
            "listing timeouts", "ZRANGE", self._keys.workflow(workflow_name), 0, -1
        )
        return await self._read(sorted(int(i) for i in ids))

    async def list_valid(
        self, workflow_name: str, status: int, now: datetime
    ) -> Sequence[TimeoutRecord]:
        ids = await self._client.command(
            "listing due timeouts",
            "ZRANGEBYSCORE",
            self._keys.due(workflow_name, status),
            "-inf",
            to_us(now),
        )
        return await self._read(sorted(int(i) for i in ids))

    async def _read(self, ids: Sequence[int]) -> Sequence[TimeoutRecord]:
        if not ids:
            return []
        replies = await self._client.pipeline(
            "reading timeouts", [("HMGET", self._keys.timeout(i), *_FIELDS) for i in ids]
        )
        out: list[TimeoutRecord] = []
        for id, reply in zip(ids, replies, strict=True):
            if isinstance(reply, AdapterError):
                raise reply
            if reply[0] is not None:  # removed since its ID was read
                out.append(_timeout(id, reply))
        return [t for t in out if not t.completed]

    async def next_expiry(self, workflow_name: str, status: int) -> datetime | None:
        first = await self._client.command(
            "reading the next expiry",
            "ZRANGE",
            self._keys.due(workflow_name, status),
            0,
            0,
            "WITHSCORES",
        )
        if not first:
            return None
        entry = first[0]
        score = entry[1] if isinstance(entry, list | tuple) else first[1]
        return from_us(int(float(score)))

    async def wait_for_insert(self, workflow_name: str, timeout: float) -> None:
        signal = self._inserted.get(workflow_name)
        if signal is None:
            signal = self._inserted[workflow_name] = Signal()
        since = signal.generation
        key = self._keys.inserts(workflow_name)
        last = await self._client.command(
            "waiting for a timeout", "XREVRANGE", key, "+", "-", "COUNT", 1
        )
        if signal.generation != since:
            return
        after = last[0][0] if last else b"0-0"
        read = asyncio.ensure_future(
            self._waiters.read("waiting for a timeout", key, after, timeout)
        )
        bell = asyncio.ensure_future(signal.wait(timeout, since=since))
        try:
            done, _ = await asyncio.wait((read, bell), return_when=asyncio.FIRST_COMPLETED)
            if read not in done:
                # A create here: the read returns as its entry arrives, unless the entry
                # was already the last one read above.
                await asyncio.wait((read,), timeout=_GRACE)
            if read.done():
                read.result()
        finally:
            for task in (read, bell):
                if not task.done():
                    task.cancel()
                    task.add_done_callback(_retrieve)

    async def close(self) -> None:
        """Close the store's blocking connections (and the client if it owns it).
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._waiters.close()
        if self._owns_client:
            await self._client.close()
