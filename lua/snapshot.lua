-- snapshot.lua -- everything `planb stats`, the planb:stats publisher and /metrics show, in one
-- consistent read: counters since start, queue depths, jobs in flight, breaker states and the
-- 1/5/60-minute sums of the per-minute counters (planb:stats:m:<unix minute>, see finish.lua).
-- Reads in-flight lists, breaker hashes and minute hashes derived from ARGV[1] (single Redis).
-- KEYS[1]  stats hash (planb:stats)
-- KEYS[2]  workers zset (planb:workers)
-- ARGV[1]  key prefix
-- ARGV[2]  the current unix minute
-- ARGV[3]  number of queues Q, then ARGV[4 .. 3+Q] queue names, then model names
-- Returns  {HGETALL of the stats hash, {depth per queue}, jobs in flight,
--          {state, open_left_ms, window calls, failed, slow per model (as of the breaker's
--          last report; a forced breaker shows what it is forced to, open with 0 left)},
--          {window sums for 1, 5 and 60 minutes}}
--          each window sum lists the fields below, in order
local fields = {'jobs', 'source:primary', 'source:fallback', 'source:cache',
                'source:semantic_cache', 'source:stale_cache', 'source:degraded'}
local prefix, minute, nq = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local depths = {}
for i = 1, nq do
  depths[i] = redis.call('LLEN', prefix .. ':q:' .. ARGV[3 + i])
end
local inflight = 0
for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  inflight = inflight + redis.call('LLEN', prefix .. ':inflight:' .. w)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local breakers = {}
for i = 4 + nq, #ARGV do
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
return {redis.call('HGETALL', KEYS[1]), depths, inflight, breakers, windows}
