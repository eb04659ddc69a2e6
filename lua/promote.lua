-- promote.lua -- delayed jobs whose time has come go back to their queue, atomically.
-- Every host's monitor runs it every 50 ms (promote.c); a job leaves its sorted set and
-- enters its queue in the one script, and only when its ZREM removed it, so two monitors
-- never promote a job twice. A promoted job is pushed on the claim end (RPUSH: claim.lua
-- and BLMOVE take from the right), so it runs before the backlog: run_at_ms means "run at",
-- not "join the queue at". Due jobs are pushed latest first, so the earliest is claimed first.
-- The time is Redis's (TIME), the clock claim.lua deferred them with.
-- KEYS[1]     stats hash (planb:stats): delayed:promoted counts every job promoted
-- KEYS[2..]   pairs: a delayed set (planb:delayed:<queue>), then its queue (planb:q:<queue>)
-- ARGV[1]     the most jobs to promote per queue in one call (bounds its run time)
-- Returns     the number of jobs promoted
local max = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = 0
for i = 2, #KEYS - 1, 2 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, max)
  for k = #due, 1, -1 do
    if redis.call('ZREM', KEYS[i], due[k]) == 1 then
      redis.call('RPUSH', KEYS[i + 1], due[k])
      total = total + 1
    end
  end
end
if total > 0 then
  redis.call('HINCRBY', KEYS[1], 'delayed:promoted', total)
end
return total
