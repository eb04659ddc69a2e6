-- front_push.lua -- the front door's one round trip per request: admit it, then queue its job.
-- Refuses (nothing pushed) when an operator paused the queue (planb:paused, one HEXISTS),
-- when no worker has beaten within the lease, when the queue is full, or when the key's
-- requests of this minute are used up; else LPUSHes the job.
-- KEYS[1]  the queue (planb:q:<http.queue>)
-- KEYS[2]  the workers zset (planb:workers: id -> last heartbeat, ms, Redis clock)
-- KEYS[3]  the key's counter of this minute (planb:front:rpm:<key name>:<unix minute>), or "-"
-- KEYS[4]  the paused queues hash (planb:paused: queue name -> who paused it)
-- ARGV[1]  the job JSON
-- ARGV[2]  http.max_queue: the depth at which requests are refused
-- ARGV[3]  lease_ms: a worker whose last beat is older is not counted
-- ARGV[4]  the key's rpm (0 = no limit)
-- ARGV[5]  the queue's name (its field in planb:paused)
-- Returns  "OK", "PAUSED", "NO_WORKERS", "QUEUE_FULL" or "RATE_LIMITED"
if redis.call('HEXISTS', KEYS[4], ARGV[5]) == 1 then
  return 'PAUSED'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[2], now - tonumber(ARGV[3]), '+inf') == 0 then
  return 'NO_WORKERS'
end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then
  return 'QUEUE_FULL'
end
local rpm = tonumber(ARGV[4])
if rpm > 0 and KEYS[3] ~= '-' then
  local n = redis.call('INCR', KEYS[3])
  if n == 1 then
    redis.call('PEXPIRE', KEYS[3], 120000)
  end
  if n > rpm then
    return 'RATE_LIMITED'
  end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
return 'OK'
