-- handback.lua -- a draining worker returns its unfinished jobs and leaves, atomically.
-- The jobs are pushed on the right end of the queue, the end workers take next,
-- oldest claim first. This is a clean exit, not a crash: the jobs' hand-back counts
-- (planb:deliveries) are not raised, and the worker leaves planb:workers so the
-- reaper never looks for it.
-- KEYS[1]  the worker's in-flight list
-- KEYS[2]  the queue to return them to
-- KEYS[3]  workers zset (planb:workers)
-- KEYS[4]  the worker's suspect key (planb:suspect:<worker>, see claim.lua)
-- ARGV[1]  worker id
-- Returns  the number of jobs handed back
local n = 0
while true do
  local job = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not job then break end
  n = n + 1
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
return n
