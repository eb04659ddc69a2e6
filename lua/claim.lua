-- claim.lua -- move up to N jobs from the queues into a worker's in-flight list in one round trip.
-- Used when the worker has room for many jobs and the queue is deep; an empty result
-- sends the worker back to its blocking BLMOVE, whose job comes back here to be vetted.
-- Vetting costs one EXISTS while planb:deliveries does not exist (no job was handed back
-- after a crash). When it does, a handed-back job ("suspect": it was in flight when a
-- worker died) is treated apart:
--   * its result already exists (a worker the reaper took for dead finished it): acked
--     here, never run again;
--   * a job in flight in two or more crashes runs alone: at most one such job per worker
--     at a time (<prefix>:suspect:<worker>), so a further crash is blamed on it and on
--     jobs that crashed at most once, and the jobs that merely shared a worker with a
--     poison job stop at 2 while it reaches max_deliveries. One crash (the usual kill or
--     OOM) never slows recovery down.
-- KEYS[1]      the worker's in-flight list (planb:inflight:<worker>)
-- KEYS[2]      deliveries hash (planb:deliveries)
-- KEYS[3]      stats hash (planb:stats)
-- KEYS[4]      the worker's suspect key (planb:suspect:<worker>)
-- A paused queue (a field of planb:paused, written by the admin API) is not claimed from: one
-- HMGET per call tells which, and a job BLMOVE took from it after the pause goes back to its
-- oldest end unrun. The reply names the paused queues, so the worker parks BLMOVE on the
-- others only (and polls once a second when all are paused).
-- KEYS[5]      workers zset (planb:workers): a claim stamps the lease too, so a worker
--              never holds jobs the reaper cannot see
-- KEYS[6]      paused queues hash (planb:paused: queue name -> {"by", "at_ms"})
-- KEYS[7..]    queue lists, tried in order (planb:q:<queue>)
-- ARGV[1]      the most jobs to move
-- ARGV[2]      result key prefix ("planb:result:")
-- ARGV[3]      worker id
-- ARGV[4]      the position (1 = KEYS[7]) of the queue the job in ARGV[5] came from; 0: none
-- ARGV[5]      a job BLMOVE already put in the in-flight list, to vet first ("" when none)
-- ARGV[6..]    the queue names (fields of planb:paused), in the order of KEYS[7..]
-- Returns      the jobs to run, oldest first (the order they were pushed), then a nil
--              element when a suspect was left for later (the worker waits a moment
--              instead of blocking on BLMOVE, which would hand it the same job again),
--              then, when any of the queues is paused, an array of their positions.
local max = tonumber(ARGV[1])
local vet = redis.call('EXISTS', KEYS[2]) == 1
local out, deferred = {}, false
local t = redis.call('TIME')
redis.call('ZADD', KEYS[5], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[3])

-- 'run', 'acked' (result exists) or 'later' (put back: this worker runs a suspect already).
local function vetting(job, queue)
  if not vet then return 'run' end
  local sha = redis.sha1hex(job)
  local crashes = tonumber(redis.call('HGET', KEYS[2], sha))
  if not crashes then return 'run' end
  local ok, j = pcall(cjson.decode, job)
  if ok and type(j) == 'table' and type(j.id) == 'string'
      and redis.call('EXISTS', ARGV[2] .. j.id) == 1 then
    redis.call('LREM', KEYS[1], 1, job)
    redis.call('HDEL', KEYS[2], sha)
    redis.call('HINCRBY', KEYS[3], 'duplicates', 1)
    return 'acked'
  end
  if crashes < 2 then return 'run' end
  if redis.call('SET', KEYS[4], sha, 'NX') then return 'run' end
  redis.call('LREM', KEYS[1], 1, job)
  redis.call('RPUSH', queue, job)
  deferred = true
  return 'later'
end

local nq = #KEYS - 6
local flags = redis.call('HMGET', KEYS[6], unpack(ARGV, 6, 5 + nq))
local paused = {}
for i = 1, nq do
  if flags[i] then
    paused[#paused + 1] = i
  end
end

local vq = tonumber(ARGV[4])
if vq > 0 then
  if flags[vq] then
    redis.call('LREM', KEYS[1], 1, ARGV[5])
    redis.call('RPUSH', KEYS[6 + vq], ARGV[5])
  elseif vetting(ARGV[5], KEYS[6 + vq]) == 'run' then
    out[1] = ARGV[5]
  end
end
for i = 7, #KEYS do
  while #out < max and not flags[i - 6] do
    local job = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
    if not job then break end
    local v = vetting(job, KEYS[i])
    if v == 'run' then
      out[#out + 1] = job
    elseif v == 'later' then
      break
    end
  end
  if #out >= max then break end
end
if deferred then
  out[#out + 1] = false
end
if #paused > 0 then
  out[#out + 1] = paused
end
return out
