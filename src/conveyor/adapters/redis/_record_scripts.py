"""The Lua scripts of the Redis record store (key layout: ``_record_keys``).

Each script runs atomically on the server. ``WRITE`` applies a batch of record writes, each
with its own outcome: the compare-and-set on the run's version, the one active run per
workflow and foreign ID, the record, its indexes, its history entry and its event (in
the outbox, or on its topic's stream), all or nothing per write. The scripts build the
key names of a write from the prefix and the escaped names they are given (``ARGV``),
which Redis allows outside Redis Cluster: the adapter targets one Redis server (or a
primary with replicas), not a cluster.

Every script starts with ``#!lua`` (no flags): Redis then refuses a script that writes at
its start when the server is out of memory, instead of failing it half-way (a script's
effects are not rolled back), so a batch applies entirely or not at all.
"""

from __future__ import annotations

from typing import Final

from ._client import Script

__all__ = ["DELETE_OUTBOX", "PIN", "RECORD_FAILURE", "REGISTER", "WRITE", "WRITE_WIDTH"]

WRITE_WIDTH: Final = 26
"""``ARGV`` values per write of ``WRITE``."""

WRITE = Script(
    r"""#!lua
local P = ARGV[1]
local n = tonumber(ARGV[2])
local W = 26
local out = {}
local now = nil
for i = 0, n - 1 do
  local a = 2 + i * W
  local rid, rid_e, wf, wf_e, fid = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local expected = tonumber(ARGV[a + 6])
  local status, state, ts = ARGV[a + 7], ARGV[a + 8], ARGV[a + 11]
  local rk = P .. 'run:' .. rid_e
  local cur = redis.call('HMGET', rk, 'version', 'status', 'run_state', 'dk')
  local outcome = 'ok'
  if expected == 0 then
    if cur[1] then outcome = 'v' .. cur[1] end
  elseif (not cur[1]) or tonumber(cur[1]) ~= expected then
    outcome = 'v' .. (cur[1] or '')
  end
  if outcome == 'ok' then
    local ak = P .. 'active:' .. wf_e
    local holder = redis.call('HGET', ak, fid)
    if ARGV[a + 18] == '1' then
      if holder and holder ~= rid then
        outcome = 'busy'
      elseif not holder then
        redis.call('HSET', ak, fid, rid)
      end
    elseif holder == rid then
      redis.call('HDEL', ak, fid)
    end
  end
  if outcome == 'ok' then
    local g = P .. 'ix:'
    local wk = P .. 'wf:' .. wf_e .. ':'
    local m = ts .. rid
    local fields = {
      'status', status, 'run_state', state, 'object', ARGV[a + 9],
      'updated_at', ARGV[a + 12], 'version', ARGV[a + 13], 'run_state_reason', ARGV[a + 14],
      'status_description', ARGV[a + 15], 'trace_origin', ARGV[a + 16], 'reached', ARGV[a + 17]}
    if not cur[1] then
      local seq = redis.call('INCR', P .. 'seq:runs')
      redis.call('HSET', rk, 'workflow_name', wf, 'foreign_id', fid, 'run_id', rid,
        'created_at', ARGV[a + 10], 'seq', seq, unpack(fields))
      redis.call('ZADD', g .. 'time', 0, m)
      redis.call('ZADD', wk .. 'time', 0, m)
      redis.call('ZADD', g .. 'fid', 0, fid .. '\0' .. m)
      redis.call('ZADD', wk .. 'fid', 0, fid .. '\0' .. m)
      redis.call('ZADD', g .. 'run', 0, rid .. '\0' .. ts)
      local cm = ts .. string.format('%016d', seq) .. rid
      redis.call('ZADD', g .. 'created', 0, cm)
      redis.call('ZADD', wk .. 'created', 0, cm)
      redis.call('ZADD', g .. 'status:' .. status, 0, m)
      redis.call('ZADD', wk .. 'status:' .. status, 0, m)
      redis.call('ZADD', g .. 'state:' .. state, 0, m)
      redis.call('ZADD', wk .. 'state:' .. state, 0, m)
      local lk = P .. 'latest:' .. wf_e
      local prev = redis.call('HGET', lk, fid)
      local created = tonumber(ARGV[a + 10])
      if (not prev) or tonumber(string.match(prev, '^(%S+) ')) <= created then
        redis.call('HSET', lk, fid, ARGV[a + 10] .. ' ' .. rid)
      end
    else
      redis.call('HSET', rk, unpack(fields))
      if cur[2] ~= status then
        redis.call('ZREM', g .. 'status:' .. cur[2], m)
        redis.call('ZREM', wk .. 'status:' .. cur[2], m)
        redis.call('ZADD', g .. 'status:' .. status, 0, m)
        redis.call('ZADD', wk .. 'status:' .. status, 0, m)
      end
      if cur[3] ~= state then
        redis.call('ZREM', g .. 'state:' .. cur[3], m)
        redis.call('ZREM', wk .. 'state:' .. cur[3], m)
        redis.call('ZADD', g .. 'state:' .. state, 0, m)
        redis.call('ZADD', wk .. 'state:' .. state, 0, m)
      end
      if cur[4] then
        redis.call('ZREM', cur[4], rid)
        redis.call('HDEL', rk, 'dk')
      end
    end
    if ARGV[a + 19] == '1' then
      redis.call('DEL', P .. 'failmsg:' .. rid_e)
    end
    redis.call('RPUSH', P .. 'hist:' .. rid_e, ARGV[a + 24])
    local stream = ARGV[a + 25]
    if stream == '' then
      local ok = P .. 'outbox:' .. wf_e
      local eid = redis.call('XADD', ok, '*', 'i', ARGV[a + 20], 'r', rid, 't', ARGV[a + 21],
        'h', ARGV[a + 22], 'c', ARGV[a + 23])
      redis.call('HSET', P .. 'outbox:ids', ARGV[a + 20], eid .. ' ' .. ok)
    else
      if not now then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      end
      local id = redis.call('INCR', ARGV[a + 26])
      redis.call('XADD', stream, id .. '-0', 'f', rid, 't', ARGV[a + 21], 'h', ARGV[a + 22],
        'c', now)
      outcome = id
    end
  end
  out[i + 1] = outcome
end
return out
"""
)
"""Apply ``ARGV[2]`` writes (``WRITE_WIDTH`` values each, after the prefix ``ARGV[1]``):
per write ``ok``, ``v<stored version>`` (a version conflict; ``v`` alone: no such run) or
``busy`` (another run of the foreign ID is active).

A write's event goes to its workflow's outbox stream, or, when the write names a topic's
stream and counter (its last two values), straight onto that topic as the streamer's
send script appends it (``_entries.SEND``: the next ID of the counter, fields ``f`` the
run ID, ``t``, ``h``, ``c`` the server's clock in ms); the write's outcome is then the
event's ID (an integer) instead of ``ok``."""

DELETE_OUTBOX = Script(
    r"""#!lua
local deleted = 0
for i = 2, #ARGV do
  local where = redis.call('HGET', ARGV[1], ARGV[i])
  if where then
    local eid, key = string.match(where, '^(%S+) (.*)$')
    deleted = deleted + redis.call('XDEL', key, eid)
    redis.call('HDEL', ARGV[1], ARGV[i])
  end
end
return deleted
"""
)
"""Delete the outbox events ``ARGV[2..]`` (by outbox ID, through the hash ``ARGV[1]``)."""

RECORD_FAILURE = Script(
    r"""#!lua
local rk, fk, mk, dk = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local version, attempt = tonumber(ARGV[1]), tonumber(ARGV[2])
local stored = redis.call('HGET', rk, 'version')
if (not stored) or tonumber(stored) ~= version then return 0 end
redis.call('HSET', fk, ARGV[3], ARGV[4])
redis.call('HSET', mk, ARGV[3], ARGV[5])
local latest = redis.call('HMGET', rk, 'lfv', 'lfa', 'dk')
local lv, la = tonumber(latest[1] or '-1'), tonumber(latest[2] or '-1')
if version > lv or (version == lv and attempt >= la) then
  if latest[3] then redis.call('ZREM', latest[3], ARGV[7]) end
  redis.call('HSET', rk, 'lfv', version, 'lfa', attempt, 'lf', ARGV[3])
  if ARGV[6] ~= '' then
    redis.call('ZADD', dk, ARGV[6], ARGV[7])
    redis.call('HSET', rk, 'dk', dk)
  else
    redis.call('HDEL', rk, 'dk')
  end
end
return 1
"""
)
"""Keep a failure (``ARGV``: version, attempt, key, JSON, message, next attempt in
microseconds or ``''``, run ID) if run ``KEYS[1]`` is at its version; 1 if kept."""

REGISTER = Script(
    r"""#!lua
local n = redis.call('LLEN', KEYS[1])
if n > 0 then
  local last = redis.call('LINDEX', KEYS[1], -1)
  if string.sub(last, 1, #ARGV[2] + 1) == ARGV[2] .. ' ' then return {n, last} end
end
local entry = ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4]
n = redis.call('RPUSH', KEYS[1], entry)
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return {n, entry}
"""
)
"""Register a definition (``ARGV``: workflow, hash, at in microseconds, document) unless
the latest of list ``KEYS[1]`` has the hash; ``{version, entry}`` of what is kept."""

PIN = Script(
    r"""#!lua
local pinned = redis.call('GET', KEYS[1])
if pinned then return pinned end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""
)
"""The pinned location of ``KEYS[1]``, pinning ``ARGV[1]`` if none is."""
