"""``Listing``: the Redis record store's lists of runs, read off its sorted-set indexes.

The indexes (``_record_keys``) are sorted sets of score 0 whose members sort, byte by byte,
in listing order: ``<ts><run ID>`` (``<ts>`` the creation time, fixed width), behind a
member prefix for the foreign ID index (``<foreign ID>\\0``). A page is a range read
(``ZRANGEBYLEX``/``ZREVRANGEBYLEX ... LIMIT``) that starts strictly after the cursor's
key, so a page costs the same however deep it is, and ``created_after``/``created_before``
are the range's ends.

``list_runs`` reads one index, or several merged, and checks the rest of the query on the
records read (``matches``), choosing by the query:

1. a run ID prefix matching at most ``GATHER`` runs: those runs, from ``P:ix:run``
   (``<run ID>\\0<ts>``, a prefix range), sorted by their keys;
2. an exact foreign ID: ``fid`` (the foreign ID's runs are one range, already in order);
3. a foreign ID prefix matching at most ``GATHER`` runs: those runs, from ``fid``;
4. statuses: the ``status:<n>`` indexes merged; else run states: the ``state:<n>`` ones;
5. else ``time``;

each the workflow's own indexes when the query names one, else the global ones. A prefix
matching more runs than ``GATHER`` is checked on the records of the next choice instead
(many matches: the records read are mostly matches). ``count_runs`` counts a range
(``ZLEXCOUNT``) when its index decides the whole query, else counts matches up to the cap.

``list`` (``RecordStore.list``, with offsets) reads ``created`` (``<ts><seq><run ID>``:
creation time, then insertion), checking its foreign ID, status and run state filters on
the records read.
"""

from __future__ import annotations

import builtins
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..._capabilities import RunPage, RunQuery
from ..._errors import AdapterError
from ..._ids import check_foreign_id
from ..._protocols import Order, RecordFilter
from ..._record import Record
from .._listing import (
    Key,
    check_query,
    decode_cursor,
    encode_cursor,
    matches,
    matches_nothing,
    page_limit,
    prefix_successor,
)
from .._rows import DecodedRow
from ._client import RedisClient
from ._record_keys import (
    FIELDS,
    TS_WIDTH,
    RecordKeys,
    decode_run,
    timestamp,
    timestamp_of,
    timestamp_us,
)

__all__ = ["GATHER", "Listing"]

GATHER: Final = 1000
"""The most runs a prefix may match to be listed from its own index."""
_BATCH: Final = 200
"""Index members read per range read."""
_SEQ_WIDTH: Final = 16

Bound = tuple[bytes, bool]
"""An end of a range of order keys: the key, and whether it is included."""


@dataclass(frozen=True, slots=True)
class _Lane:
    """One index to read: its key, and the prefix of its members before the order key."""

    key: str
    prefix: bytes = b""


def _successor(prefix: bytes) -> bytes:
    """The smallest bytes after every member that starts with a lane's prefix (which ends
    in ``\\0``)."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


def _lex(lane: _Lane, lower: Bound | None, upper: Bound | None) -> tuple[bytes, bytes]:
    """The ``ZRANGEBYLEX`` ends of ``lane`` between two bounds."""
    if lower is None:
        low = b"[" + lane.prefix if lane.prefix else b"-"
    else:
        low = (b"[" if lower[1] else b"(") + lane.prefix + lower[0]
    if upper is None:
        high = b"(" + _successor(lane.prefix) if lane.prefix else b"+"
    else:
        high = (b"[" if upper[1] else b"(") + lane.prefix + upper[0]
    return low, high


def _within(key: bytes, lower: Bound | None, upper: Bound | None) -> bool:
    if lower is not None and (key < lower[0] or (key == lower[0] and not lower[1])):
        return False
    return upper is None or key < upper[0] or (key == upper[0] and upper[1])


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class _LaneReader:
    """Reads one lane's order keys in listing order, a batch at a time."""

    def __init__(
        self,
        client: RedisClient,
        lane: _Lane,
        lower: Bound | None,
        upper: Bound | None,
        newest_first: bool,
    ) -> None:
        self._client = client
        self._lane = lane
        self._lower = lower
        self._upper = upper
        self._newest_first = newest_first
        self._buffer: deque[bytes] = deque()
        self._done = False

    async def head(self) -> bytes | None:
        if not self._buffer and not self._done:
            await self._fill()
        return self._buffer[0] if self._buffer else None

    def pop(self) -> bytes:
        return self._buffer.popleft()

    async def _fill(self) -> None:
        low, high = _lex(self._lane, self._lower, self._upper)
        if self._newest_first:
            command = ("ZREVRANGEBYLEX", self._lane.key, high, low)
        else:
            command = ("ZRANGEBYLEX", self._lane.key, low, high)
        reply: list[bytes] = await self._client.command(
            "listing runs", *command, "LIMIT", 0, _BATCH
        )
        cut = len(self._lane.prefix)
        keys = [bytes(m)[cut:] for m in reply]
        self._buffer.extend(keys)
        if len(reply) < _BATCH:
            self._done = True
        elif self._newest_first:
            self._upper = (keys[-1], False)
        else:
            self._lower = (keys[-1], False)


class _Source:
    """Order keys of the candidates of a query, in listing order: lanes merged, or a
    gathered list."""

    def __init__(self, readers: Sequence[_LaneReader], newest_first: bool) -> None:
        self._readers = list(readers)
        self._newest_first = newest_first
        self._gathered: deque[bytes] | None = None

    @classmethod
    def gathered(cls, keys: builtins.list[bytes]) -> _Source:
        source = cls([], False)
        source._gathered = deque(keys)
        return source

    async def take(self, n: int) -> builtins.list[bytes]:
        out: builtins.list[bytes] = []
        if self._gathered is not None:
            while self._gathered and len(out) < n:
                out.append(self._gathered.popleft())
            return out
        while len(out) < n:
            best: _LaneReader | None = None
            best_key: bytes | None = None
            for reader in self._readers:
                key = await reader.head()
                if key is None:
                    continue
                if (
                    best_key is None
                    or (self._newest_first and key > best_key)
                    or (not self._newest_first and key < best_key)
                ):
                    best, best_key = reader, key
            if best is None or best_key is None:
                break
            best.pop()
            if not out or out[-1] != best_key:  # a run in two lanes (never: lanes are disjoint)
                out.append(best_key)
        return out


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where a query's candidates come from, and whether the index decides it alone."""

    lanes: tuple[_Lane, ...] = ()
    exact: bool = False
    gathered: tuple[bytes, ...] | None = None


class Listing:
    """The record store's listing reads (see the module docstring)."""

    def __init__(self, client: RedisClient, keys: RecordKeys) -> None:
        self._client = client
        self._keys = keys

    # ------------------------------------------------------------------ records

    async def read(self, run_ids: Sequence[str]) -> builtins.list[DecodedRow | None]:
        """The runs of ``run_ids`` as read (``None`` for a run that is not stored)."""
        if not run_ids:
            return []
        replies = await self._client.pipeline(
            "reading records", [("HMGET", self._keys.run(r), *FIELDS) for r in run_ids]
        )
        out: builtins.list[DecodedRow | None] = []
        for reply in replies:
            if isinstance(reply, AdapterError):
                raise reply
            out.append(decode_run(reply))
        return out

    # ------------------------------------------------------------------ list_runs

    async def list_runs(self, query: RunQuery, limit: int, cursor: str | None) -> RunPage:
        limit = page_limit(limit)
        check_query(query)
        after = None if cursor is None else decode_cursor(cursor, query.newest_first)
        if matches_nothing(query):
            return RunPage([], None)
        found = await self._matching(query, after, limit + 1)
        page = found[:limit]
        if len(found) <= limit:
            return RunPage([r for _, r in page], None)
        last = page[-1][0]
        key = Key(timestamp_of(last[:TS_WIDTH]), _text(last[TS_WIDTH:]))
        return RunPage([r for _, r in page], encode_cursor(key, query.newest_first))

    async def count_runs(self, query: RunQuery, cap: int) -> int:
        check_query(query)
        if cap <= 0 or matches_nothing(query):
            return 0
        lower, upper = _bounds(query, None)
        plan = await self._plan(query, lower, upper)
        if plan.exact:
            total = 0
            for lane in plan.lanes:
                low, high = _lex(lane, lower, upper)
                total += int(
                    await self._client.command("counting runs", "ZLEXCOUNT", lane.key, low, high)
                )
            return min(total, cap)
        return len(await self._matching(query, None, cap))

    async def _matching(
        self, query: RunQuery, after: Key | None, want: int
    ) -> builtins.list[tuple[bytes, Record]]:
        """Up to ``want`` runs matching ``query`` after ``after``, with their order keys."""
        lower, upper = _bounds(query, after)
        plan = await self._plan(query, lower, upper)
        if plan.gathered is not None:
            keys = sorted(
                (k for k in plan.gathered if _within(k, lower, upper)),
                reverse=query.newest_first,
            )
            source = _Source.gathered(keys)
        else:
            readers = [
                _LaneReader(self._client, lane, lower, upper, query.newest_first)
                for lane in plan.lanes
            ]
            source = _Source(readers, query.newest_first)
        found: builtins.list[tuple[bytes, Record]] = []
        while len(found) < want:
            keys = await source.take(min(max(want - len(found), 64), 1000))
            if not keys:
                break
            rows = await self.read([_text(k[TS_WIDTH:]) for k in keys])
            for key, row in zip(keys, rows, strict=True):
                if row is not None and matches(query, row.record):
                    found.append((key, row.record))
        return found[:want]

    async def _plan(self, query: RunQuery, lower: Bound | None, upper: Bound | None) -> _Plan:
        wf = query.workflow_name
        index = self._keys.index
        if query.run_id_prefix:
            gathered = await self._gather(self._keys.ix + "run", query.run_id_prefix, run=True)
            if gathered is not None:
                return _Plan(gathered=gathered)
        others = bool(query.foreign_id_prefix or query.run_id_prefix)
        if query.foreign_id is not None:
            lane = _Lane(index(wf, "fid"), query.foreign_id.encode() + b"\0")
            exact = not (others or query.statuses or query.run_states)
            return _Plan((lane,), exact)
        if query.foreign_id_prefix:
            gathered = await self._gather(index(wf, "fid"), query.foreign_id_prefix, run=False)
            if gathered is not None:
                return _Plan(gathered=gathered)
        if query.statuses:
            lanes = tuple(_Lane(index(wf, f"status:{int(s)}")) for s in sorted(set(query.statuses)))
            return _Plan(lanes, not (others or query.run_states))
        if query.run_states:
            lanes = tuple(
                _Lane(index(wf, f"state:{int(s)}"))
                for s in sorted({int(s) for s in query.run_states})
            )
            return _Plan(lanes, not others)
        return _Plan((_Lane(index(wf, "time")),), not others)

    async def _gather(self, key: str, prefix: str, *, run: bool) -> tuple[bytes, ...] | None:
        """The order keys of the members of ``key`` that start with ``prefix``, if at most
        ``GATHER`` do."""
        successor = prefix_successor(prefix)
        low = b"[" + prefix.encode()
        high = b"+" if successor is None else b"(" + successor.encode()
        count = int(await self._client.command("listing runs", "ZLEXCOUNT", key, low, high))
        if count > GATHER:
            return None
        members: list[bytes] = await self._client.command(
            "listing runs", "ZRANGEBYLEX", key, low, high
        )
        if run:  # <run ID>\0<ts>
            return tuple(m[-TS_WIDTH:] + m[: -TS_WIDTH - 1] for m in members)
        return tuple(m[m.index(b"\0") + 1 :] for m in members)  # <foreign ID>\0<ts><run ID>

    # ------------------------------------------------------------------ list

    async def list(
        self,
        workflow_name: str,
        offset: int,
        limit: int,
        order: Order,
        filter: RecordFilter | None,
    ) -> builtins.list[Record]:
        """``RecordStore.list``: by creation time, then insertion."""
        if limit <= 0:
            limit = 25
        offset = max(0, offset)
        if filter is not None:
            for foreign_id in filter.foreign_ids:
                check_foreign_id(foreign_id)
        key = self._keys.index(workflow_name, "created")
        low, high = b"-", b"+"
        if filter is not None and filter.created_after is not None:
            low = b"(" + timestamp(filter.created_after) + b"\xff"
        if filter is not None and filter.created_before is not None:
            high = b"(" + timestamp(filter.created_before)
        desc = order is Order.DESC
        residual = filter is not None and bool(
            filter.foreign_ids or filter.statuses or filter.run_states
        )
        if not residual:
            rows = await self.read(await self._created(key, low, high, desc, offset, limit))
            return [row.record for row in rows if row is not None]
        assert filter is not None
        out: builtins.list[Record] = []
        skip, position = offset, 0
        while len(out) < limit:
            run_ids = await self._created(key, low, high, desc, position, 500)
            if not run_ids:
                break
            position += len(run_ids)
            for row in await self.read(run_ids):
                if row is None or not filter.matches(row.record):
                    continue
                if skip:
                    skip -= 1
                elif len(out) < limit:
                    out.append(row.record)
        return out

    async def _created(
        self, key: str, low: bytes, high: bytes, desc: bool, offset: int, count: int
    ) -> builtins.list[str]:
        args: tuple[Any, ...] = (
            ("ZREVRANGEBYLEX", key, high, low) if desc else ("ZRANGEBYLEX", key, low, high)
        )
        members: list[bytes] = await self._client.command(
            "listing records", *args, "LIMIT", offset, count
        )
        return [_text(m[TS_WIDTH + _SEQ_WIDTH :]) for m in members]


def _bounds(query: RunQuery, after: Key | None) -> tuple[Bound | None, Bound | None]:
    """The range of order keys of ``query`` after the cursor's key ``after``."""
    lower: Bound | None = None
    upper: Bound | None = None
    if query.created_after is not None:
        lower = (timestamp(query.created_after), True)
    if query.created_before is not None:
        upper = (timestamp(query.created_before), False)
    if after is not None:
        key = timestamp_us(after.created_at_us) + after.run_id.encode("utf-8", "surrogatepass")
        if query.newest_first:
            if upper is None or key < upper[0]:
                upper = (key, False)
        elif lower is None or key >= lower[0]:
            lower = (key, False)
    return lower, upper
