"""The Lua scripts that make every mutation one atomic server-side step (ST-44).

Each mutation is one ``EVALSHA`` (one round trip). When the server does not
know a script yet (its first use, or after a restart or ``SCRIPT FLUSH``) the
``NOSCRIPT`` reply is answered with ``SCRIPT LOAD`` and the ``EVALSHA`` again,
pipelined in one round trip (``client.RedisClient.run_script``).

Scripts never parse JSON: Redis' cjson turns ``3.0`` into ``3`` and loses
integers above 2^53, and JSON-2 forbids both. Python builds every JSON text;
Lua only stores strings, compares them byte for byte and patches the
``task_count`` member at the end of the summary.

Run hash fields (``{p}runs:{seg}``): ``info``, ``summary``, ``revision``,
``incarnation`` and, while a process owns the run, ``lease_owner`` and
``lease_expires_micros`` as upstream has them, plus Python-private fields (see
``records.py``): ``py:layout``, ``py:base``, ``py:task:<name>`` and
``py:ctx:<key>``. A leased run is also in the ``{p}run_leases:v1:expiry`` ZSET,
scored by its expiry.

Catalog scripts share one KEYS layout (``Keys.catalog``)::

    KEYS[1] run hash        KEYS[2] {p}runs:index        KEYS[3] ...:members
    KEYS[4] ...:all         KEYS[5..10] ...:status:<s>   KEYS[11] lease expiry
"""

from __future__ import annotations

_COMMON = """
-- set_ttl reads TTL before writing; Redis < 5 allows that only with effects replication.
if redis.replicate_commands then redis.replicate_commands() end

-- ST-45: the lease scripts give an owned run a TTL of at least its remaining lease
-- + 90 s; both count down together, so while the lease exists no write shortens it.
local function set_ttl(key, seconds)
  if seconds == '0' then
    redis.call('PERSIST', key)
    return
  end
  local ttl = tonumber(seconds)
  if redis.call('HEXISTS', key, 'lease_owner') == 1 then
    ttl = math.max(ttl, redis.call('TTL', key))
  end
  redis.call('EXPIRE', key, ttl)
end

local function hset_many(key, list)
  for first = 1, #list, 1000 do
    redis.call('HSET', key, unpack(list, first, math.min(first + 999, #list)))
  end
end

local function drop_member(member)
  redis.call('ZREM', KEYS[4], member)
  for i = 5, 10 do redis.call('ZREM', KEYS[i], member) end
end

-- Put run `id` under `member` in the catalog, in exactly one status set.
local function catalog(id, member, status_index)
  local old = redis.call('HGET', KEYS[3], id)
  if old and old ~= member then drop_member(old) end
  redis.call('SADD', KEYS[2], id)
  redis.call('HSET', KEYS[3], id, member)
  redis.call('ZADD', KEYS[4], 0, member)
  for i = 1, 6 do
    if i == status_index then
      redis.call('ZADD', KEYS[4 + i], 0, member)
    else
      redis.call('ZREM', KEYS[4 + i], member)
    end
  end
end

local function stored_count(summary)
  return tonumber(string.match(summary or '', '"task_count":(%d+)}$'))
end
"""

CREATE = _COMMON + """
-- ARGV: id, member, status_index, info, summary, revision, incarnation, ttl, task names...
local h = KEYS[1]
if redis.call('EXISTS', h) == 1 then
  return {'conflict', redis.call('HGET', h, 'incarnation') or ''}
end
local fields = {'info', ARGV[4], 'summary', ARGV[5], 'revision', ARGV[6],
                'incarnation', ARGV[7], 'py:layout', '1', 'py:base', ARGV[6]}
for i = 9, #ARGV do
  fields[#fields + 1] = 'py:task:' .. ARGV[i]
  fields[#fields + 1] = ''
end
hset_many(h, fields)
catalog(ARGV[1], ARGV[2], tonumber(ARGV[3]))
set_ttl(h, ARGV[8])
return {'ok', ARGV[7]}
"""

UPSERT_TASKS = _COMMON + """
-- KEYS[1] run hash; ARGV: incarnation or '', revision, ttl, fencing owner or '',
-- (name, task json)...
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return 'missing' end
local meta = redis.call('HMGET', h, 'incarnation', 'py:layout', 'summary', 'lease_owner')
if ARGV[1] ~= '' and meta[1] ~= ARGV[1] then return 'missing' end
if ARGV[4] ~= '' and meta[4] ~= ARGV[4] then return 'fenced' end
if meta[2] ~= '1' then return 'adopt' end
local added = 0
for i = 5, #ARGV, 2 do
  added = added + redis.call('HSET', h, 'py:task:' .. ARGV[i], ARGV[i + 1])
end
local fields = {'revision', ARGV[2]}
local count = stored_count(meta[3])
if added > 0 and count then
  fields[3] = 'summary'
  fields[4] = (string.gsub(meta[3], '%d+}$', tostring(count + added) .. '}'))
end
redis.call('HSET', h, unpack(fields))
set_ttl(h, ARGV[3])
return 'ok'
"""

MERGE_CONTEXT = _COMMON + """
-- KEYS[1] run hash; ARGV: incarnation or '', revision, ttl, fencing owner or '',
-- (key, value json)...
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return 'missing' end
if ARGV[1] ~= '' and redis.call('HGET', h, 'incarnation') ~= ARGV[1] then return 'missing' end
if ARGV[4] ~= '' and redis.call('HGET', h, 'lease_owner') ~= ARGV[4] then return 'fenced' end
local fields = {'revision', ARGV[2]}
for i = 5, #ARGV, 2 do
  fields[#fields + 1] = 'py:ctx:' .. ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
end
hset_many(h, fields)
set_ttl(h, ARGV[3])
return 'ok'
"""

FOLD = _COMMON + """
-- Rewrite `info`/`summary` from a full record Python built, compare-and-swap on the
-- base token. ARGV: id, incarnation or '', expected base, new revision, ttl, info,
-- summary head (up to "task_count":), task count Python saw, member, status_index,
-- number of folded tasks, lease guard owner and expiry, fencing owner or '',
-- (task name, folded json)..., (ctx key, folded json)... A guarded fold (owner ~= '',
-- a reconciliation) happens only while the lease is exactly as Python read it, and
-- removes the lease; a fenced fold only while the lease still names its owner.
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return 'missing' end
local meta = redis.call('HMGET', h, 'incarnation', 'py:layout', 'py:base', 'revision', 'summary')
if ARGV[2] ~= '' and meta[1] ~= ARGV[2] then return 'missing' end
local ours = meta[2] == '1'
local base = meta[4]
if ours then base = meta[3] end
if (base or '') ~= ARGV[3] then return 'conflict' end
local guarded = ARGV[12] ~= ''
if guarded then
  local lease = redis.call('HMGET', h, 'lease_owner', 'lease_expires_micros')
  if lease[1] ~= ARGV[12] or (lease[2] or '') ~= ARGV[13] then return 'lease_changed' end
end
if ARGV[14] ~= '' and redis.call('HGET', h, 'lease_owner') ~= ARGV[14] then return 'fenced' end
local count = tonumber(ARGV[8])
if ours then count = stored_count(meta[5]) or count end
redis.call('HSET', h, 'info', ARGV[6], 'summary', ARGV[7] .. count .. '}',
           'revision', ARGV[4], 'py:base', ARGV[4], 'py:layout', '1')
local i = 15
for _ = 1, tonumber(ARGV[11]) do
  local field = 'py:task:' .. ARGV[i]
  local current = redis.call('HGET', h, field)
  -- A task rewritten since Python read it stays in its field (it is newer).
  if not current or current == ARGV[i + 1] then redis.call('HSET', h, field, '') end
  i = i + 2
end
while i <= #ARGV do
  local field = 'py:ctx:' .. ARGV[i]
  if redis.call('HGET', h, field) == ARGV[i + 1] then redis.call('HDEL', h, field) end
  i = i + 2
end
if guarded then
  redis.call('HDEL', h, 'lease_owner', 'lease_expires_micros')
  redis.call('ZREM', KEYS[11], ARGV[1])
end
catalog(ARGV[1], ARGV[9], tonumber(ARGV[10]))
set_ttl(h, ARGV[5])
return 'ok'
"""

DELETE = _COMMON + """
-- ARGV: id, now (µs). A non-terminal run with a live owner lease is refused (ST-35).
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return 'missing' end
local meta = redis.call('HMGET', h, 'lease_expires_micros', 'summary')
local expires = tonumber(meta[1] or '')
if expires and expires > tonumber(ARGV[2]) then
  local status = string.match(meta[2] or '', ',"status":"(%a+)"')
  if status == 'pending' or status == 'running' then return 'conflict' end
end
redis.call('DEL', h)
redis.call('SREM', KEYS[2], ARGV[1])
local member = redis.call('HGET', KEYS[3], ARGV[1])
if member then
  redis.call('HDEL', KEYS[3], ARGV[1])
  drop_member(member)
end
redis.call('ZREM', KEYS[11], ARGV[1])
return 'ok'
"""

LEASE = """
-- Take (ARGV[6] = 'acquire') or extend ('renew') an owner lease (ST-42, ST-50).
-- KEYS[1] run hash, KEYS[2] lease expiry ZSET; ARGV: id, owner, expiry (µs),
-- now (µs), ttl, mode. Acquiring refuses another owner's live lease ('held');
-- renewing needs the owner's own unexpired lease ('lost').
local h = KEYS[1]
local cur = redis.call('HMGET', h, 'lease_owner', 'lease_expires_micros')
local live = cur[1] and (tonumber(cur[2] or '') or 0) > tonumber(ARGV[4])
if ARGV[6] == 'renew' then
  if cur[1] ~= ARGV[2] or not live then return 'lost' end
else
  if redis.call('EXISTS', h) == 0 then return 'missing' end
  if live and cur[1] ~= ARGV[2] then return 'held' end
end
redis.call('HSET', h, 'lease_owner', ARGV[2], 'lease_expires_micros', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if ARGV[5] ~= '0' then
  -- ST-45: the run outlives its lease by at least 90 s
  local left = math.ceil((tonumber(ARGV[3]) - tonumber(ARGV[4])) / 1000000) + 90
  redis.call('EXPIRE', h, math.max(tonumber(ARGV[5]), left))
end
return 'ok'
"""

RELEASE = """
-- Drop an owner lease. KEYS[1] run hash, KEYS[2] lease expiry ZSET; ARGV: id, owner,
-- expiry the lease must still have ('' = any), ttl. Another owner's lease stays
-- ('held'); with owner '' only an expiry entry without a lease on the hash goes.
local h = KEYS[1]
local cur = redis.call('HMGET', h, 'lease_owner', 'lease_expires_micros')
if cur[1] then
  if cur[1] ~= ARGV[2] or (ARGV[3] ~= '' and cur[2] ~= ARGV[3]) then return 'held' end
  redis.call('HDEL', h, 'lease_owner', 'lease_expires_micros')
  if ARGV[4] ~= '0' then redis.call('EXPIRE', h, ARGV[4]) end
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 'ok'
"""

SET_ORIGIN = """
-- KEYS[1] run hash; ARGV: origin json, fencing owner or ''. The origin lives in the
-- run's hash (field py:origin) so it shares the run's TTL and goes with its deletion.
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then return 'missing' end
if ARGV[2] ~= '' and redis.call('HGET', h, 'lease_owner') ~= ARGV[2] then return 'fenced' end
redis.call('HSET', h, 'py:origin', ARGV[1])
return 'ok'
"""

PAGE = """
-- KEYS[1] a catalog ZSET; ARGV: max bound ('+' or '(member'), count, key prefix.
-- Returns member, summary, revision triples ('' where the run hash is gone).
local members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], '-', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, member in ipairs(members) do
  local id = string.match(member, '^1:%x+:(.+)$') or string.match(member, '^0:(.+)$')
  local row = {false, false}
  if id then
    local seg = id
    if id == 'index' or not string.match(id, '^[A-Za-z0-9_%-]+$') then
      seg = '~' .. string.gsub(id, '.', function(c) return string.format('%02x', string.byte(c)) end)
    end
    row = redis.call('HMGET', ARGV[3] .. 'runs:' .. seg, 'summary', 'revision')
  end
  out[#out + 1] = member
  out[#out + 1] = row[1] or ''
  out[#out + 1] = row[2] or ''
end
return out
"""

REPAIR = _COMMON + """
-- Listing met a stale catalog entry. ARGV: id, stale member, revision seen,
-- correct member, status_index. A vanished run (TTL) leaves the catalog; a run
-- whose entry is wrong is re-filed, unless it changed since it was read.
local h = KEYS[1]
if redis.call('EXISTS', h) == 0 then
  drop_member(ARGV[2])
  if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[2] then
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('SREM', KEYS[2], ARGV[1])
  end
  return 'dropped'
end
if ARGV[3] == '' or redis.call('HGET', h, 'revision') ~= ARGV[3] then return 'changed' end
if ARGV[2] ~= ARGV[4] then drop_member(ARGV[2]) end
catalog(ARGV[1], ARGV[4], tonumber(ARGV[5]))
return 'fixed'
"""


SCRIPTS = {
    "create": CREATE,
    "upsert_tasks": UPSERT_TASKS,
    "merge_context": MERGE_CONTEXT,
    "fold": FOLD,
    "delete": DELETE,
    "lease": LEASE,
    "release": RELEASE,
    "page": PAGE,
    "set_origin": SET_ORIGIN,
    "repair": REPAIR,
}
"""Script texts by name; the store runs them with ``RedisClient.run_script``."""
