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
-- ARGV[6..5+Q] the queue names (fields of planb:paused), in the order of KEYS[7..]
-- Delayed jobs (a top-level run_at_ms, or delay_ms, see docs/jobs.md): a claimed job whose
-- time has not come on Redis's clock leaves the in-flight list for its queue's sorted set
-- (planb:delayed:<queue>, score = run_at_ms; promote.lua brings it back) and is not in the
-- reply. A delay_ms job is stored with its run_at_ms written in place of its delay_ms
-- (from submitted_at_ms when it has one, else from now), so a re-claim never delays it
-- again. The check is done here, not by the worker, because only this script knows which
-- queue each job came from. It costs two plain substring searches per job; only a job that
-- names one of the fields is decoded. A job with both fields, a non-integer or an
-- out-of-range value is left to the worker, which refuses it (BAD_FIELD).
-- ARGV[6+Q..]  the delayed sorted sets (planb:delayed:<queue>), in the order of KEYS[7..]
-- ARGV[6+2Q]   the recent cancels zset (planb:cancels, id -> when, written by cancel.lua): while
--              it has members, each job to run is searched for its "id" strings (one pattern
--              scan, no decode) and a job whose id is there (confirmed by decoding it) comes
--              back as a one-element array {job}: the worker finishes it cancelled unrun.
-- Returns      the jobs to run, oldest first (the order they were pushed), then a nil
--              element when a suspect was left for later (the worker waits a moment
--              instead of blocking on BLMOVE, which would hand it the same job again),
--              then, when any of the queues is paused, an array of their positions.
local max = tonumber(ARGV[1])
local vet = redis.call('EXISTS', KEYS[2]) == 1
local out, deferred = {}, false
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[5], now, ARGV[3])
local nq = #KEYS - 6
local DELAY_MAX = 31536000000 -- one year, as job.c checks it
local DEFER_MAX = 1000 -- jobs one call may defer: bounds its run time on a queue of delayed jobs
local n_deferred = 0

local function is_int(v, lo, hi)
  return type(v) == 'number' and v == math.floor(v) and v >= lo and v <= hi
end

-- true when the job was moved to its queue's delayed set (the job is in KEYS[1]).
local function delaying(job, qi)
  if n_deferred >= DEFER_MAX then return false end
  if not string.find(job, '"run_at_ms"', 1, true) and not string.find(job, '"delay_ms"', 1, true) then
    return false
  end
  local ok, j = pcall(cjson.decode, job)
  if not ok or type(j) ~= 'table' then return false end
  local at, d, stored = j.run_at_ms, j.delay_ms, job
  if at ~= nil and d ~= nil then return false end
  if at ~= nil then
    if not is_int(at, 0, 9007199254740991) then return false end
  elseif d ~= nil then
    if not is_int(d, 0, DELAY_MAX) then return false end
    local from = now
    if is_int(j.submitted_at_ms, 0, 9007199254740991) then from = j.submitted_at_ms end
    at = from + d
    if at <= now then return false end
    -- the one top-level "delay_ms" key becomes "run_at_ms"; a second key of that name
    -- (inside meta) would make the rewrite ambiguous: such a job runs undelayed
    local _, n = string.gsub(job, '"delay_ms"%s*:', '')
    if n ~= 1 then return false end
    stored = string.gsub(job, '"delay_ms"%s*:%s*[-+%d.eE]+', '"run_at_ms":' .. string.format('%d', at), 1)
  else
    return false
  end
  if at <= now then return false end
  redis.call('LREM', KEYS[1], 1, job)
  redis.call('ZADD', ARGV[5 + nq + qi], at, stored)
  redis.call('HINCRBY', KEYS[3], 'delayed:deferred', 1)
  n_deferred = n_deferred + 1
  return true
end

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

local flags = redis.call('HMGET', KEYS[6], unpack(ARGV, 6, 5 + nq))
local paused = {}
for i = 1, nq do
  if flags[i] then
    paused[#paused + 1] = i
  end
end

local cancels = ARGV[6 + 2 * nq]
local any_cancels = cancels ~= nil and redis.call('EXISTS', cancels) == 1

-- job, or {job} when it was cancelled (cancel.lua) before it ran
local function runnable(job)
  if not any_cancels then return job end
  for id in string.gmatch(job, '"id"%s*:%s*"([^"\\]+)"') do
    if redis.call('ZSCORE', cancels, id) then
      local ok, j = pcall(cjson.decode, job)
      if ok and type(j) == 'table' and j.id == id then return {job} end
    end
  end
  return job
end

local vq = tonumber(ARGV[4])
if vq > 0 then
  if flags[vq] then
    redis.call('LREM', KEYS[1], 1, ARGV[5])
    redis.call('RPUSH', KEYS[6 + vq], ARGV[5])
  elseif delaying(ARGV[5], vq) then
    -- deferred: not run now
  elseif vetting(ARGV[5], KEYS[6 + vq]) == 'run' then
    out[1] = runnable(ARGV[5])
  end
end
for i = 7, #KEYS do
  while #out < max and not flags[i - 6] do
    local job = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
    if not job then break end
    local v = delaying(job, i - 6) and 'delayed' or vetting(job, KEYS[i])
    if v == 'run' then
      out[#out + 1] = runnable(job)
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
