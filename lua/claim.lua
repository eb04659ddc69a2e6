-- claim.lua -- move up to N jobs from the queues into a worker's in-flight list in one round trip.
-- Used when the worker has room for many jobs and the queue is deep; an empty result
-- sends the worker back to its blocking BLMOVE.
-- KEYS[1]      the worker's in-flight list (planb:inflight:<worker>)
-- KEYS[2..]    queue lists, tried in order (planb:q:<queue>)
-- ARGV[1]      the most jobs to move
-- Returns      the raw jobs moved, oldest first (the order they were pushed).
local max = tonumber(ARGV[1])
local out = {}
for i = 2, #KEYS do
  while #out < max do
    local job = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
    if not job then break end
    out[#out + 1] = job
  end
  if #out >= max then break end
end
return out
