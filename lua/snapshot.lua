-- snapshot.lua -- everything `planb stats`, the planb:stats publisher and /metrics show, in one
-- consistent read: counters since start, queue depths, jobs in flight, breaker states and the
-- 1/5/60-minute sums of the per-minute counters (planb:stats:m:<unix minute>, see finish.lua).
-- Reads in-flight lists, breaker hashes, minute hashes, the dead-letter list, rate-limit
-- windows and the queues' oldest jobs by keys derived from ARGV[1] (single Redis). Its cost
-- is bounded by the config and the workers alive, never by queue or dead-letter lengths: a
-- queue costs LLEN and one LINDEX (its oldest job, parsed only when under 64 KiB).
-- KEYS[1]  stats hash (planb:stats)
-- KEYS[2]  workers zset (planb:workers)
-- ARGV[1]  key prefix
-- ARGV[2]  the current unix minute
-- ARGV[3]  lease_ms: a worker whose heartbeat is older is not counted alive
-- ARGV[4]  number of queues Q, then ARGV[5 .. 4+Q] queue names, then model names
-- Returns  {HGETALL of the stats hash, {depth per queue}, jobs in flight,
--          {state, open_left_ms, window calls, failed, slow per model (as of the breaker's
--          last report; a forced breaker shows what it is forced to, open with 0 left)},
--          {window sums for 1, 5 and 60 minutes}, dead letters (LLEN),
--          workers alive, {oldest job's age ms per queue: 0 empty, -1 unknown (no
--          submitted_at_ms, or over 64 KiB)}, {requests, tokens in the last 60 s per model},
--          {delayed jobs waiting per queue (ZCARD of planb:delayed:<queue>)}}
--          each window sum lists the fields below, in order
local fields = {'jobs', 'source:primary', 'source:fallback', 'source:cache',
                'source:semantic_cache', 'source:stale_cache', 'source:degraded'}
local prefix, minute, lease, nq = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local depths, ages, scheduled = {}, {}, {}
for i = 1, nq do
  local key = prefix .. ':q:' .. ARGV[4 + i]
  scheduled[i] = redis.call('ZCARD', prefix .. ':delayed:' .. ARGV[4 + i])
  depths[i] = redis.call('LLEN', key)
  ages[i] = 0
  if depths[i] > 0 then
    ages[i] = -1
    local job = redis.call('LINDEX', key, -1) -- pushed on the head: the oldest is the tail
    if job and #job <= 65536 then
      local ok, j = pcall(cjson.decode, job)
      if ok and type(j) == 'table' and type(j.submitted_at_ms) == 'number'
          and j.submitted_at_ms >= 0 then
        ages[i] = math.max(0, now - math.floor(j.submitted_at_ms))
      end
    end
  end
end
local inflight = 0
for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  inflight = inflight + redis.call('LLEN', prefix .. ':inflight:' .. w)
end
local alive = redis.call('ZCOUNT', KEYS[2], now - lease, '+inf')
local breakers, usage = {}, {}
local sec = math.floor(now / 1000)
for i = 5 + nq, #ARGV do
  usage[#usage + 1] = redis.call('ZCOUNT', prefix .. ':ratelimit:' .. ARGV[i], now - 60000, '+inf')
  local used, tok = 0, redis.call('HGETALL', prefix .. ':tokens:' .. ARGV[i])
  for k = 1, #tok, 2 do
    if tonumber(tok[k]) > sec - 60 then
      used = used + tonumber(tok[k + 1])
    end
  end
  usage[#usage + 1] = used
  local h = redis.call('HMGET', prefix .. ':breaker:' .. ARGV[i], 'state', 'open_until',
                       'probe_until', 'w_calls', 'w_fails', 'w_slow', 'forced')
  local code, left = 0, 0
  if h[7] == 'open' then
    code = 1
  elseif h[7] == 'closed' then
    code = 0
  elseif h[1] == 'open' then
    code, left = 1, math.max(0, tonumber(h[2]) - now)
  elseif h[1] == 'half_open' then
    code, left = 2, math.max(0, tonumber(h[3]) - now)
  end
  breakers[#breakers + 1] = code
  breakers[#breakers + 1] = left
  for k = 4, 6 do
    breakers[#breakers + 1] = tonumber(h[k] or '0')
  end
end
local windows = {}
local sums = {}
for k = 1, #fields do
  sums[k] = 0
end
for m = 0, 59 do
  local v = redis.call('HMGET', prefix .. ':stats:m:' .. (minute - m), unpack(fields))
  for k = 1, #fields do
    sums[k] = sums[k] + tonumber(v[k] or '0')
  end
  if m == 0 or m == 4 or m == 59 then
    local copy = {}
    for k = 1, #fields do
      copy[k] = sums[k]
    end
    windows[#windows + 1] = copy
  end
end
return {redis.call('HGETALL', KEYS[1]), depths, inflight, breakers, windows,
        redis.call('LLEN', prefix .. ':dead'), alive, ages, usage, scheduled}
