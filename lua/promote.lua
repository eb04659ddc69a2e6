-- promote.lua -- delayed jobs whose time has come go back to their queue, atomically.
-- Every host's monitor runs it at least every 50 ms, and at the next job's time when that
-- comes sooner (promote.c, from this script's reply); a job leaves its sorted set and
-- enters its queue in the one script, and only when its ZREM removed it, so two monitors
-- never promote a job twice. A promoted job is pushed on the claim end (RPUSH: claim.lua
-- and BLMOVE take from the right), so it runs before the backlog: run_at_ms means "run at",
-- not "join the queue at". Due jobs are pushed latest first, so the earliest is claimed first.
-- The time is Redis's (TIME), the clock claim.lua deferred them with.
-- KEYS[1]     stats hash (planb:stats): delayed:promoted counts every job promoted
-- KEYS[2..]   pairs: a delayed set (planb:delayed:<queue>), then its queue (planb:q:<queue>)
-- ARGV[1]     the most jobs to promote per queue in one call (bounds its run time)
-- Returns     {jobs promoted, ms until the earliest job left is due (0: a queue still has due
--             jobs, its batch was full; -1: none left)}
local max = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total, wait = 0, -1
for i = 2, #KEYS - 1, 2 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, max)
  for k = #due, 1, -1 do
    if redis.call('ZREM', KEYS[i], due[k]) == 1 then
      redis.call('RPUSH', KEYS[i + 1], due[k])
      total = total + 1
    end
  end
  local next = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if next[2] then
    local ms = math.max(0, math.ceil(tonumber(next[2]) - now))
    if wait < 0 or ms < wait then wait = ms end
  end
end
if total > 0 then
  redis.call('HINCRBY', KEYS[1], 'delayed:promoted', total)
end
return {total, wait}
