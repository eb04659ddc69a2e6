-- cache_get.lua -- one cache lookup: read the entry and, on a miss, take the key's herd lock.
-- Freshness is judged by Redis's clock (TIME) against the entry's stored_at, so host clocks
-- never matter. An entry from a tier above the caller's floor is neither a hit nor stale.
-- KEYS[1]  cache entry (planb:cache:<sha256>)
-- KEYS[2]  its herd lock (planb:cache:<sha256>:lock)
-- KEYS[3]  optional: the workers zset (planb:workers), passed when the cache shares the
--          queue's Redis; a lock whose holder ("<host>:<pid>:<ups>:<n>") is no longer in it
--          was left by a reaped worker and is taken over at once
-- A lock this same worker took before its connection last came back (a smaller <ups>) is
-- taken over too: the outage (a failover above all) may have lost its unlock, and a re-run
-- of the job that took it must not wait for it until its deadline.
-- ARGV[1]  "use" (a fresh entry is a hit) or "refresh" (never a hit; runs even when locked)
-- ARGV[2]  TTL in seconds: an older entry is only stale
-- ARGV[3]  highest tier accepted ("0" = any)
-- ARGV[4]  lock token (unique per job)
-- ARGV[5]  lock lifetime in ms (the caller's remaining deadline)
-- ARGV[6]  "1" = return a stale entry too (the caller holds none yet)
-- ARGV[7]  Redis time in ms when the caller started waiting ("0" = a first lookup)
-- Returns  {verdict, age_s, entry, lock_value, now_ms}: verdict hit | lead (lock taken) |
--          run (refresh, lock held by another) | wait (lock held) | failed (the holder the
--          caller waited on spent its chain; the marker "failed:<ms>:,model,...," in
--          lock_value); entry "" when none is returned, age_s -1 when no entry. A marker older
--          than the caller's wait, or met on a first lookup, is replaced by the caller's lock:
--          only jobs that waited share a failure.
local t = redis.call('TIME')
local now = tonumber(t[1])
local now_ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)
local raw = redis.call('GET', KEYS[1])
local age, usable = -1, false
if raw then
  local ok, e = pcall(cjson.decode, raw)
  if ok and type(e) == 'table' and tonumber(e.stored_at) then
    age = math.max(0, now - tonumber(e.stored_at))
    local tier = tonumber(e.tier) or 0
    local max = tonumber(ARGV[3])
    usable = max == 0 or (tier >= 1 and tier <= max)
  end
end
if usable and ARGV[1] == 'use' and age < tonumber(ARGV[2]) then
  return {'hit', age, raw, '', now_ms}
end
local entry = ''
if usable and ARGV[6] == '1' then entry = raw end
if not usable then age = -1 end
if redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[5]) then
  return {'lead', age, entry, '', now_ms}
end
local holder = redis.call('GET', KEYS[2]) or ''
if holder == ARGV[4] then
  return {'lead', age, entry, '', now_ms}
end
local failed_ms = tonumber(string.match(holder, '^failed:(%d+):'))
local me, my_ups = string.match(ARGV[4], '^(.*):(%d+):%d+$')
local worker, ups = string.match(holder, '^(.*):(%d+):%d+$')
if not failed_ms and worker and worker == me and tonumber(ups) < tonumber(my_ups) then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  return {'lead', age, entry, '', now_ms}
end
if not failed_ms and KEYS[3] then
  if worker and not redis.call('ZSCORE', KEYS[3], worker) then
    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
    return {'lead', age, entry, '', now_ms}
  end
end
if failed_ms then
  local since = tonumber(ARGV[7])
  if since > 0 and failed_ms >= since then
    return {'failed', age, entry, holder, now_ms}
  end
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  return {'lead', age, entry, '', now_ms}
end
if ARGV[1] == 'refresh' then
  return {'run', age, entry, '', now_ms}
end
return {'wait', age, entry, '', now_ms}
