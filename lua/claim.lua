-- claim.lua -- move up to N jobs from the queues into a worker's in-flight list in one round trip.
-- Used when the worker has room for many jobs and the queue is deep; an empty result
-- sends the worker back to its blocking BLMOVE, whose job comes back here to be vetted.
-- Vetting costs nothing while planb:deliveries does not exist (no job was handed back
-- after a crash). When it does, a handed-back job whose result already exists (it was
-- finished by a worker the reaper took for dead) is acked here instead of being run again.
-- KEYS[1]      the worker's in-flight list (planb:inflight:<worker>)
-- KEYS[2]      deliveries hash (planb:deliveries)
-- KEYS[3]      stats hash (planb:stats)
-- KEYS[4..]    queue lists, tried in order (planb:q:<queue>)
-- ARGV[1]      the most jobs to move
-- ARGV[2]      result key prefix ("planb:result:")
-- ARGV[3]      optional: a job BLMOVE already put in the in-flight list, to vet first
-- Returns      the jobs to run, oldest first (the order they were pushed).
local max = tonumber(ARGV[1])
local vet = redis.call('EXISTS', KEYS[2]) == 1
local out = {}

-- False when the job ran before and its result exists: then it is acked, not returned.
local function wanted(job)
  if not vet then return true end
  local sha = redis.sha1hex(job)
  if redis.call('HEXISTS', KEYS[2], sha) == 0 then return true end
  local ok, j = pcall(cjson.decode, job)
  if not ok or type(j) ~= 'table' or type(j.id) ~= 'string' then return true end
  if redis.call('EXISTS', ARGV[2] .. j.id) == 0 then return true end
  redis.call('LREM', KEYS[1], 1, job)
  redis.call('HDEL', KEYS[2], sha)
  redis.call('HINCRBY', KEYS[3], 'duplicates', 1)
  return false
end

if ARGV[3] and wanted(ARGV[3]) then
  out[1] = ARGV[3]
end
for i = 4, #KEYS do
  while #out < max do
    local job = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
    if not job then break end
    if wanted(job) then
      out[#out + 1] = job
    end
  end
  if #out >= max then break end
end
return out
