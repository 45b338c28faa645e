"""Stream entries as events, and the script that appends them.

An event is one entry of its topic's stream, with the explicit ID ``N-0`` where ``N`` is
the topic's counter (``<prefix>:seq:{topic}``) taken by ``INCRBY`` in the same script as
the ``XADD``: IDs are consecutive integers from 1, so ``event.id % n`` spreads events
evenly over ``n`` shards (Redis's own ``<ms>-<seq>`` IDs would not: most events of a busy
millisecond would share one residue). Fields: ``f`` the foreign ID, ``t`` the type, ``h``
the headers as a JSON object, ``c`` the time of the append in milliseconds by the
server's clock (``TIME``, in the script: so ``c`` never decreases along a stream, which
the trimming relies on).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..._event import Event
from ..._protocols import OutgoingEvent
from ._client import Script

__all__ = [
    "RELEASE",
    "SEND",
    "TRIM",
    "entry_id",
    "event_of",
    "events_of",
    "compact_json",
    "headers_field",
    "send_args",
    "stream_entries",
]

SEND = Script(
    """
local n = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = redis.call('INCRBY', KEYS[2], n)
local first = last - n + 1
for i = 0, n - 1 do
  local at = 2 + i * 3
  redis.call('XADD', KEYS[1], (first + i) .. '-0',
    'f', ARGV[at], 't', ARGV[at + 1], 'h', ARGV[at + 2], 'c', now)
end
return last
"""
)
"""Append ``ARGV[1]`` events (foreign ID, type, headers JSON each) to stream ``KEYS[1]``
with IDs from counter ``KEYS[2]``; the last ID."""

RELEASE = Script(
    """
local page = tonumber(ARGV[4])
local released = 0
local start = '-'
while true do
  local rows = redis.call('XPENDING', KEYS[1], ARGV[1], start, '+', page, ARGV[2])
  if #rows == 0 then return released end
  local claim = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
  for _, row in ipairs(rows) do claim[#claim + 1] = row[1] end
  claim[#claim + 1] = 'IDLE'
  claim[#claim + 1] = ARGV[3]
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
  released = released + #rows
  if #rows < page then return released end
  start = '(' .. rows[#rows][1]
end
"""
)
"""Give every entry pending for consumer ``ARGV[2]`` of group ``ARGV[1]`` on stream
``KEYS[1]`` the idle time ``ARGV[3]`` (ms), ``ARGV[4]`` entries at a time: another
consumer's ``XAUTOCLAIM`` takes them at once. How many."""

TRIM = Script(
    """
local floor = tonumber(ARGV[1])
local keep_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - keep_ms
local function at_or_after(n)
  local e = redis.call('XRANGE', KEYS[1], n .. '-0', '+', 'COUNT', 1)[1]
  if not e then return nil, nil end
  local id = tonumber(string.match(e[1], '^(%d+)-'))
  local c = 0
  for i = 1, #e[2], 2 do
    if e[2][i] == 'c' then c = tonumber(e[2][i + 1]) or 0 end
  end
  return id, c
end
local lo = at_or_after(0)
if not lo then return 0 end
local last = tonumber(redis.call('GET', KEYS[2]) or lo) or lo
-- The first entry at least `keep_ms` young: binary search over IDs (c never decreases).
local hi = last + 1
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  local id, c = at_or_after(mid)
  if id == nil then
    hi = mid
  elseif c >= cutoff then
    hi = mid
  else
    lo = id + 1
  end
end
local minid = math.min(lo, floor)
return redis.call('XTRIM', KEYS[1], 'MINID', minid .. '-0')
"""
)
"""Trim stream ``KEYS[1]`` (its counter ``KEYS[2]``) below ``ARGV[1]`` (the lowest ID some
group has not acknowledged), keeping every entry younger than ``ARGV[2]`` ms; how many
were removed."""


_encode = msgspec.json.encode


def compact_json(value: object) -> bytes:
    """``value`` as compact JSON in UTF-8, by msgspec (15 times as fast as ``json.dumps``
    on the small objects a write carries); a string holding a lone surrogate, which UTF-8
    cannot carry, is written with ``\\u`` escapes instead, as ``json`` writes it."""
    try:
        return _encode(value)
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def headers_field(headers: Mapping[str, str]) -> bytes:
    """An event's ``h`` field: its headers as a JSON object."""
    return compact_json(dict(headers))


def send_args(events: Sequence[OutgoingEvent]) -> list[object]:
    """``SEND``'s arguments for ``events``."""
    args: list[object] = [len(events)]
    for e in events:
        args += [e.foreign_id, int(e.type), headers_field(e.headers)]
    return args


def entry_id(raw: object) -> int:
    """``N`` of an entry ID ``N-0`` (as ``bytes`` or ``str``)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return int(text.partition("-")[0])


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


def _headers(raw: object) -> Mapping[str, str]:
    """The ``h`` field; empty if it does not decode (the event is still handed out)."""
    try:
        return _decode_headers(raw if isinstance(raw, bytes) else _text(raw))
    except msgspec.DecodeError:  # not JSON, or not an object of strings
        return {}


def event_of(raw_id: object, fields: Any) -> Event:
    """The event of one stream entry (``fields`` as redis-py returns them: a dict)."""
    get: dict[bytes, Any] = fields if isinstance(fields, dict) else _pairs(fields)
    try:
        created_ms = int(_text(get.get(b"c")) or 0)
    except ValueError:
        created_ms = 0
    try:
        kind = int(_text(get.get(b"t")) or 0)
    except ValueError:
        kind = 0
    return Event(
        id=entry_id(raw_id),
        foreign_id=_text(get.get(b"f")),
        type=kind,
        headers=_headers(get.get(b"h")),
        created_at=datetime.fromtimestamp(created_ms / 1000, UTC),
    )


def _pairs(flat: Any) -> dict[bytes, Any]:
    items = list(flat or [])
    return {items[i]: items[i + 1] for i in range(0, len(items) - 1, 2)}


def events_of(entries: Any) -> list[Event]:
    """The events of a list of ``(id, fields)`` entries; entries without fields (deleted
    ones, as ``XAUTOCLAIM`` and pending reads may list them) are left out."""
    return [event_of(raw_id, fields) for raw_id, fields in entries or () if fields]


def stream_entries(reply: Any) -> list[Any]:
    """The entries of an ``XREAD``/``XREADGROUP`` reply of one stream (``[]`` for none)."""
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3 shape
        return [e for entries in reply.values() for e in entries]
    return [e for _, entries in reply for e in entries]
