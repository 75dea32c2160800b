"""Layer: pure. The Lua scripts of the permission cache (one place; writer and reader both
use them).

Every script declares all keys it touches in KEYS (no key names built inside Lua),
and they all carry the organization's hash tag, so the scripts run on Redis Cluster.
"""

from __future__ import annotations

import hashlib
from typing import Final


def sha1(script: str) -> str:
    """The script's SHA1, as EVALSHA names it (``SCRIPT LOAD`` answers the same)."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


# KEYS: meta, users, labels, workspaces (of the generation the client believes current)
# ARGV: gen, n, user_1, ..., user_n, nw, ws_1, ..., ws_nw[, label field_1, ..., label field_m]
# -> {{gen, wm, sv}} when ``gen`` is not the serving generation (gen nil: not built) |
#    {{gen, wm, sv}, {value_1, ..., value_n}, {label value_1, ..., label value_m},
#     {written, known_1, ..., known_nw}}
# The usual read of a check or batch: the users' pointers (nil: unknown user), the
# registered labels asked for and whether the workspaces asked about exist (1/0, after
# ``written``: 0 when the workspace set was never written, and nothing is refused), with
# the meta fields they are valid for, atomically. The group sets and blobs the pointers
# lead to are the ones the client keeps for this ``gen`` and ``sv`` (see CHECK below); a
# few microseconds inside Redis. ('#' is ``layout.WORKSPACES_WRITTEN``.)
READ: Final = r"""
local m = redis.call('HMGET', KEYS[1], 'gen', 'wm', 'sv')
if m[1] ~= ARGV[1] then return {m} end
local n = tonumber(ARGV[2])
local out = {m, redis.call('HMGET', KEYS[2], unpack(ARGV, 3, 2 + n)), {}, {}}
local nw = tonumber(ARGV[3 + n])
if nw > 0 then
  out[4] = redis.call('SMISMEMBER', KEYS[4], '#', unpack(ARGV, 4 + n, 3 + n + nw))
end
if #ARGV > 3 + n + nw then out[3] = redis.call('HMGET', KEYS[3], unpack(ARGV, 4 + n + nw)) end
return out
"""

# KEYS: meta, users, sets, compiled, labels, workspaces (of the generation the client
#   believes current)
# ARGV: gen, n, user_1, ws_1, ..., user_n, ws_n, m, label field_1, ..., label field_m,
#       nw, ws_1, ..., ws_nw (the distinct workspaces asked about)
# -> {0} cache not built | {1, gen} generation moved (retry) |
#    {2, wm, sv, nu, (user, value) * nu, ns, (set key, value) * ns, nb, (cid, blob) * nb,
#     label value * m[, written, known_1, ..., known_nw]} (as READ's last part)
# The atomic read of everything a batch needs that a client does not hold yet: the
# users' pointers (value nil: unknown user), the group sets they point at (nil: missing
# profile, answer unknown), the compiled blobs of the asked workspaces, the registered
# labels of the m fields (nil: not registered). ``sv`` (meta) is the version of the
# serving generation's group sets: a client may keep the set values it read here, and
# answer from them with READ while ``gen`` and ``sv`` stay the same (docs/redis-layout.md,
# "Reading").
CHECK: Final = r"""
local m = redis.call('HMGET', KEYS[1], 'gen', 'wm', 'sv')
if not m[1] then return {0} end
if m[1] ~= ARGV[1] then return {1, m[1]} end
local n = tonumber(ARGV[2])
local users, sets, blobs = {}, {}, {}
local uout, sout, bout = {}, {}, {}
for i = 0, n - 1 do
  local user = ARGV[3 + 2 * i]
  local ws = ARGV[4 + 2 * i]
  local uv = users[user]
  if uv == nil then
    uv = redis.call('HGET', KEYS[2], user) or false
    users[user] = uv
    uout[#uout + 1] = user
    uout[#uout + 1] = uv
  end
  if uv then
    local skey = string.sub(uv, 1, string.find(uv, '|', 1, true) - 1)
    if skey ~= '-' and skey ~= '?' then
      local sv = sets[skey]
      if sv == nil then
        sv = redis.call('HGET', KEYS[3], skey) or false
        sets[skey] = sv
        sout[#sout + 1] = skey
        sout[#sout + 1] = sv
      end
      if sv then
        local at = string.find(sv, '\n' .. ws .. '\t', 1, true)
        if at then
          local from = at + string.len(ws) + 2
          local cid = string.sub(sv, from, string.find(sv, '\n', from, true) - 1)
          if blobs[cid] == nil then
            local blob = redis.call('HGET', KEYS[4], cid) or false
            blobs[cid] = blob
            bout[#bout + 1] = cid
            bout[#bout + 1] = blob
          end
        end
      end
    end
  end
end
local out = {2, m[2] or '0', m[3] or '0', #uout / 2}
for _, v in ipairs(uout) do out[#out + 1] = v end
out[#out + 1] = #sout / 2
for _, v in ipairs(sout) do out[#out + 1] = v end
out[#out + 1] = #bout / 2
for _, v in ipairs(bout) do out[#out + 1] = v end
local m_at = 3 + 2 * n
local nlabels = tonumber(ARGV[m_at] or '0')
if nlabels > 0 then
  local vals = redis.call('HMGET', KEYS[5], unpack(ARGV, m_at + 1, m_at + nlabels))
  for j = 1, nlabels do out[#out + 1] = vals[j] end
end
local w_at = m_at + nlabels + 1
local nw = tonumber(ARGV[w_at] or '0')
if nw > 0 then
  local known = redis.call('SMISMEMBER', KEYS[6], '#', unpack(ARGV, w_at + 1, w_at + nw))
  for j = 1, nw + 1 do out[#out + 1] = known[j] end
end
return out
"""

# KEYS: meta, users_a, sets_a, compiled_a, users_b, sets_b, compiled_b, stream
#   (a = current generation, b = generation being built; pass a's keys twice if none)
# ARGV: gen, building, rev, stream_maxlen, mode ('all' | 'building': rebuild chunks write
#       only the generation being built and emit no per-user events),
#       nsets, (set key, value, ncids, (cid, blob) * ncids) * nsets,
#       nusers, (user, set key) * nusers
# Sets are written when their revision (first line of value) is >= the stored one;
# a user when rev >= its stored revision and its set exists in that generation.
# Overwriting a set value of the serving generation raises meta ``sv`` (the set version
# readers key their copies of set values by; adding a new set does not).
# -> {-1} meta moved (re-read and retry) | {-2} cache not built (nothing written) |
#    {written users, stale users, changed sets, need set key...}
PUT: Final = r"""
local m = redis.call('HMGET', KEYS[1], 'gen', 'building')
local gen, bld = m[1] or '', m[2] or ''
if gen ~= ARGV[1] or bld ~= ARGV[2] then return {-1} end
if gen == '' and bld == '' then return {-2} end
local targets = {}
if gen ~= '' then targets[#targets + 1] = {KEYS[2], KEYS[3], KEYS[4], true} end
if bld ~= '' then targets[#targets + 1] = {KEYS[5], KEYS[6], KEYS[7], gen == ''} end
local rev = tonumber(ARGV[3])
local maxlen = ARGV[4]
if ARGV[5] == 'building' then
  if bld == '' then return {-1} end
  targets = {{KEYS[5], KEYS[6], KEYS[7], false}}
end
local i = 6
local nsets = tonumber(ARGV[i]); i = i + 1
local changed_sets = 0
local bumped = false
for _ = 1, nsets do
  local skey, value, ncids = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local cids_at = i + 3
  i = cids_at + 2 * ncids
  local nl = string.find(value, '\n', 1, true)
  local vrev = tonumber(string.sub(value, 1, nl - 1))
  for _, t in ipairs(targets) do
    local cur = redis.call('HGET', t[2], skey)
    local ok = true
    if cur then
      local cnl = string.find(cur, '\n', 1, true)
      ok = tonumber(string.sub(cur, 1, cnl - 1)) <= vrev and cur ~= value
    end
    if ok then
      for j = 0, ncids - 1 do
        redis.call('HSETNX', t[3], ARGV[cids_at + 2 * j], ARGV[cids_at + 2 * j + 1])
      end
      redis.call('HSET', t[2], skey, value)
      if t[4] then
        changed_sets = changed_sets + 1
        if cur then bumped = true end
      end
    end
  end
end
if bumped then redis.call('HINCRBY', KEYS[1], 'sv', 1) end
local nusers = tonumber(ARGV[i]); i = i + 1
local written, stale = 0, 0
local need = {}
for _ = 1, nusers do
  local user, skey = ARGV[i], ARGV[i + 1]
  i = i + 2
  local newv = skey .. '|' .. ARGV[3]
  for _, t in ipairs(targets) do
    local cur = redis.call('HGET', t[1], user)
    local oldkey = nil
    local ok = true
    if cur then
      local p = string.find(cur, '|', 1, true)
      oldkey = string.sub(cur, 1, p - 1)
      ok = tonumber(string.sub(cur, p + 1)) <= rev
    end
    if not ok then
      if t[4] then stale = stale + 1 end
    elseif skey ~= '-' and skey ~= '?' and redis.call('HEXISTS', t[2], skey) == 0 then
      need[skey] = true
    elseif cur ~= newv then
      redis.call('HSET', t[1], user, newv)
      if t[4] then
        written = written + 1
        if oldkey ~= skey then
          redis.call('XADD', KEYS[8], 'MAXLEN', '~', maxlen, '*',
                     'u', user, 'ws', '*', 'rev', ARGV[3])
        end
      end
    end
  end
end
local out = {written, stale, changed_sets}
for skey, _ in pairs(need) do out[#out + 1] = skey end
return out
"""

# KEYS: meta, labels_a, labels_b, workspaces_a, workspaces_b (a = current generation,
#   b = generation being built; pass a's keys twice if none)
# ARGV: gen, building, rev, mode ('all' | 'building'), n, (field, value) * n,
#       nw, workspace id * nw
# Replaces the whole registered-label hash with the n entries given, and the workspace
# set with the nw ids (and '#', ``layout.WORKSPACES_WRITTEN``) — the complete sets at SQL
# revision rev — when rev >= the hash's stored "#rev"; an older snapshot never
# overwrites a newer one. Atomic: a reader sees the old sets or the new ones.
# -> {-1} meta moved | {-2} cache not built | {stale (1 when the serving hash is newer),
#    changed field...} (changed fields of the serving generation)
LABELS: Final = r"""
local m = redis.call('HMGET', KEYS[1], 'gen', 'building')
local gen, bld = m[1] or '', m[2] or ''
if gen ~= ARGV[1] or bld ~= ARGV[2] then return {-1} end
if gen == '' and bld == '' then return {-2} end
local targets = {}
if gen ~= '' then targets[#targets + 1] = {KEYS[2], true, KEYS[4]} end
if bld ~= '' then targets[#targets + 1] = {KEYS[3], gen == '', KEYS[5]} end
if ARGV[4] == 'building' then
  if bld == '' then return {-1} end
  targets = {{KEYS[3], false, KEYS[5]}}
end
local rev = tonumber(ARGV[3])
local n = tonumber(ARGV[5])
local w_at = 6 + 2 * n
local want = {}
for i = 0, n - 1 do want[ARGV[6 + 2 * i]] = ARGV[7 + 2 * i] end
local out = {0}
for _, t in ipairs(targets) do
  local cur = tonumber(redis.call('HGET', t[1], '#rev') or '-1')
  if cur > rev then
    if t[2] then out[1] = 1 end
  else
    local have = {}
    local flat = redis.call('HGETALL', t[1])
    for i = 1, #flat, 2 do
      local f = flat[i]
      if f ~= '#rev' then
        have[f] = flat[i + 1]
        if want[f] == nil then
          redis.call('HDEL', t[1], f)
          if t[2] then out[#out + 1] = f end
        end
      end
    end
    for f, v in pairs(want) do
      if have[f] ~= v then
        redis.call('HSET', t[1], f, v)
        if t[2] then out[#out + 1] = f end
      end
    end
    redis.call('HSET', t[1], '#rev', ARGV[3])
    redis.call('DEL', t[3])
    redis.call('SADD', t[3], '#', unpack(ARGV, w_at + 1, w_at + tonumber(ARGV[w_at])))
  end
end
return out
"""

# KEYS: meta, users (of the serving generation)
# ARGV: gen, (user, expected value) * n
# Drops tombstones that still hold exactly the expected value (compare-and-delete: a
# pointer written meanwhile is kept). Only while ``gen`` serves and no rebuild runs.
# -> number dropped, or -1 (meta moved / rebuild running: nothing dropped)
PRUNE: Final = r"""
local m = redis.call('HMGET', KEYS[1], 'gen', 'building')
if m[1] ~= ARGV[1] or m[2] then return -1 end
local dropped = 0
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
    dropped = dropped + 1
  end
end
return dropped
"""

# KEYS: dirty, dirty_hi, wake, meta, again (the rerun request of the drain that wake wakes),
#       then any other wake flags of the organization to set in the same round trip
# ARGV: rev, wake_px, is_config (0/1), member...
# -> 1 when the caller should enqueue a drain (the wake flag was not set yet), else 0;
# with other wake flags, {that, then 1/0 per flag: set now (send its task) or already}.
# A flag already set means a drain task is on its way or running: the mark then also
# sets ``again``, so a drain that has already read its lanes (or the outbox) reads them
# once more before it lets its lease go (``RELEASE_IDLE``) — no wake is ever lost.
MARK: Final = r"""
local rev = ARGV[1]
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], 'LT', rev, ARGV[i])
  redis.call('ZADD', KEYS[2], 'GT', rev, ARGV[i])
end
local built = redis.call('HEXISTS', KEYS[4], 'gen') + redis.call('HEXISTS', KEYS[4], 'building')
if ARGV[3] == '1' and built > 0 then
  local cur = tonumber(redis.call('HGET', KEYS[4], 'cfgrev') or '0')
  if tonumber(rev) > cur then redis.call('HSET', KEYS[4], 'cfgrev', rev) end
end
local drain = 0
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[2]) then
  drain = 1
else
  redis.call('SET', KEYS[5], '1', 'PX', ARGV[2])
end
if #KEYS == 5 then return drain end
local out = {drain}
for i = 6, #KEYS do
  out[i - 4] = 0
  if redis.call('SET', KEYS[i], '1', 'NX', 'PX', ARGV[2]) then out[i - 4] = 1 end
end
return out
"""

# KEYS: dirty, dirty_hi ; ARGV: revision the members were recomputed at, member...
# Removes a member unless it was marked again at a later revision meanwhile.
DONE: Final = r"""
local r = tonumber(ARGV[1])
local removed = 0
for i = 2, #ARGV do
  local hi = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if (not hi) or tonumber(hi) <= r then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
    removed = removed + 1
  else
    redis.call('ZADD', KEYS[1], 'XX', 'GT', r + 1, ARGV[i])
  end
end
return removed
"""

# KEYS: meta, dirty lanes... ; ARGV: none
# wm = min(cursor, earliest unapplied revision - 1); only moves forward; only on a built cache.
WATERMARK: Final = r"""
if redis.call('HEXISTS', KEYS[1], 'gen') + redis.call('HEXISTS', KEYS[1], 'building') == 0 then
  return -1
end
local lo = tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0')
for i = 2, #KEYS do
  local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if first[2] then
    local s = tonumber(first[2]) - 1
    if s < lo then lo = s end
  end
end
local wm = tonumber(redis.call('HGET', KEYS[1], 'wm') or '0')
if lo > wm then redis.call('HSET', KEYS[1], 'wm', lo); return lo end
return wm
"""

# KEYS: meta ; ARGV: field, value — raise a numeric meta field (only on a built cache)
RAISE: Final = r"""
if redis.call('HEXISTS', KEYS[1], 'gen') + redis.call('HEXISTS', KEYS[1], 'building') == 0 then
  return -1
end
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); return 1 end
return 0
"""

# KEYS: meta, rebuild lease, every key of the new generation (users, sets, compiled, labels)
# ARGV: current gen ('' if none), generation being built ('' if none), new gen, token, px
# Marks a generation as being built (the old one keeps serving) under a lease that its
# builder renews; clears leftovers. A generation still being built whose lease expired
# (its builder died) is taken over: the caller drops its keys.
# -> {1, gen, taken over gen or ''} started | {0, gen} another live rebuild | {-1} meta moved
BEGIN_REBUILD: Final = r"""
local m = redis.call('HMGET', KEYS[1], 'gen', 'building')
if (m[1] or '') ~= ARGV[1] or (m[2] or '') ~= ARGV[2] then return {-1} end
if m[2] and redis.call('EXISTS', KEYS[2]) == 1 then return {0, m[2]} end
redis.call('DEL', unpack(KEYS, 3))
redis.call('HSET', KEYS[1], 'building', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
return {1, ARGV[3], m[2] or ''}
"""

# KEYS: meta ; ARGV: gen being built — abandon it (the keys are dropped by the caller)
ABORT_REBUILD: Final = r"""
if redis.call('HGET', KEYS[1], 'building') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'building')
  return 1
end
return 0
"""

# KEYS: meta ; ARGV: gen being finished, snapshot revision, now
# Atomically flips readers to the new generation. -> old gen ('' if none) or false
FLIP: Final = r"""
local m = redis.call('HMGET', KEYS[1], 'gen', 'building', 'wm', 'cursor')
if m[2] ~= ARGV[1] then return false end
redis.call('HDEL', KEYS[1], 'building')
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'built_at', ARGV[3])
local r = tonumber(ARGV[2])
if tonumber(m[3] or '0') < r then redis.call('HSET', KEYS[1], 'wm', r) end
if tonumber(m[4] or '0') < r then redis.call('HSET', KEYS[1], 'cursor', r) end
return m[1] or ''
"""

# KEYS: lease ; ARGV: token, px  -> 1 when held by token (renewed)
RENEW: Final = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease ; ARGV: token
RELEASE: Final = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lease, again ; ARGV: token, px
# Take a lease, or else leave a rerun request for its holder.
# -> 1 taken (earlier rerun requests are void: the new holder does all the work) |
#    0 held by another (``again`` set: the holder runs once more before it releases)
CLAIM: Final = r"""
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 0
"""

# KEYS: lease, again[, wake] ; ARGV: token, px
# Release a lease unless a rerun was requested meanwhile (by a claim that found it held,
# or a mark that found the wake flag set); releasing also clears the wake flag, so the
# next mark enqueues a drain again. Atomic: a request is either seen here or its
# claimer finds the lease free.
# -> 1 released | 0 rerun requested (request cleared, lease renewed) | -1 not the holder
RELEASE_IDLE: Final = r"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('DEL', KEYS[1])
if KEYS[3] then redis.call('DEL', KEYS[3]) end
return 1
"""
