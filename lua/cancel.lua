-- cancel.lua -- cancel one job by id: a queued or delayed job is removed and answered here, a
-- running one is signalled to its worker; a finished job keeps its result, atomically.
-- The job is marked cancelled (KEYS[3], TTL result_ttl_s) whatever it is, so a worker that
-- claims it later (it was in flight, or not pushed yet) can tell. A removed job gets its one
-- result here, with finish.lua's contract: stored (result TTL), pushed on its reply list when
-- it asked for `reply`, counted (jobs, cancelled, jobs:<route>:none, a 0 ms latency bucket),
-- published on the results channel, added to the events stream and, for a streamed job, ended
-- on its answer stream. Every cancel, removed or not, is PUBLISHed on the cancel channel (the
-- id), which the workers subscribe to: the one running the job aborts it and finishes it
-- through finish.lua with status cancelled.
-- Jobs are JSON text: each queue list and delayed set is scanned for the id, at most ARGV[9]
-- entries each (newest first for a list, earliest first for a set); a plain substring search
-- comes first, only an entry naming the id is decoded. A job past the bound is not found.
-- KEYS[1]    result key (planb:result:<id>)
-- KEYS[2]    reply list (planb:reply:<id>)
-- KEYS[3]    cancelled mark (planb:cancelled:<id>)
-- KEYS[4]    stats hash (planb:stats)
-- KEYS[5]    this minute's stats hash (planb:stats:m:<unix minute>)
-- KEYS[6]    events stream (planb:events)
-- KEYS[7]    the job's answer stream (planb:stream:<id>)
-- KEYS[8]    workers zset (planb:workers): their in-flight lists tell a running job
-- KEYS[9]    recent cancels zset (planb:cancels): id -> when (ms), members older than the result
--            TTL dropped here; claim.lua hands a job named there to its worker as cancelled
-- KEYS[10..] pairs: a queue list (planb:q:<queue>), then its delayed set (planb:delayed:<queue>)
-- ARGV[1]    the job id
-- ARGV[2]    result TTL in seconds (the mark's TTL too)
-- ARGV[3]    reply TTL in seconds
-- ARGV[4]    results channel (planb:results)
-- ARGV[5]    cancel channel (planb:cancel)
-- ARGV[6]    events stream MAXLEN, approximate ("0" = no stream)
-- ARGV[7]    answer stream MAXLEN
-- ARGV[8]    answer stream TTL in seconds
-- ARGV[9]    the most entries scanned per list or set
-- ARGV[10]   the default route's name (a job without "route")
-- ARGV[11]   the configured route names, space-separated ("jobs:<route>:none" only for those)
-- ARGV[12]   in-flight list prefix (planb:inflight:)
-- ARGV[13]   who cancelled (the result's "worker", e.g. "cancel")
-- Returns    "finished" (a result exists: nothing done), "removed" (queued or delayed: removed
--            and answered), "running" (in a worker's in-flight list: signalled) or "unknown"
--            (found nowhere: marked and signalled, in case it is claimed or pushed later)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'finished'
end
local id, max = ARGV[1], tonumber(ARGV[9])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[3], now, 'EX', ARGV[2])
redis.call('ZADD', KEYS[9], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - tonumber(ARGV[2]) * 1000)

-- the decoded job when raw is the job called id, else nil
local function is_it(raw)
  if not string.find(raw, id, 1, true) then return nil end
  local ok, j = pcall(cjson.decode, raw)
  if ok and type(j) == 'table' and j.id == id then return j end
  return nil
end

local job = nil
for i = 10, #KEYS - 1, 2 do
  local list = redis.call('LRANGE', KEYS[i], 0, max - 1)
  for _, raw in ipairs(list) do
    local j = is_it(raw)
    if j and redis.call('LREM', KEYS[i], 1, raw) > 0 then job = j end
  end
  local set = redis.call('ZRANGE', KEYS[i + 1], 0, max - 1)
  for _, raw in ipairs(set) do
    local j = is_it(raw)
    if j and redis.call('ZREM', KEYS[i + 1], raw) == 1 then job = j end
  end
end

if not job then
  redis.call('PUBLISH', ARGV[5], id)
  local workers = redis.call('ZRANGE', KEYS[8], 0, -1)
  for _, w in ipairs(workers) do
    for _, raw in ipairs(redis.call('LRANGE', ARGV[12] .. w, 0, max - 1)) do
      if is_it(raw) then return 'running' end
    end
  end
  return 'unknown'
end

local res = '{"id":' .. cjson.encode(id) .. ',"status":"cancelled","error":"CANCELLED job was '
  .. 'cancelled before it ran","attempts":[],"latency_ms":0,"worker":' .. cjson.encode(ARGV[13])
if type(job.meta) == 'table' then
  res = res .. ',"meta":' .. cjson.encode(job.meta)
end
res = res .. '}'
redis.call('SET', KEYS[1], res, 'EX', ARGV[2])
if job.reply == true then
  redis.call('RPUSH', KEYS[2], res)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
local route = ARGV[10]
if type(job.route) == 'string' then route = job.route end
local fields = {'jobs', 'cancelled', 'latency_le:50'}
if string.find(' ' .. ARGV[11] .. ' ', ' ' .. route .. ' ', 1, true) then
  fields[#fields + 1] = 'jobs:' .. route .. ':none'
end
for _, f in ipairs(fields) do
  redis.call('HINCRBY', KEYS[4], f, 1)
  if redis.call('HINCRBY', KEYS[5], f, 1) == 1 and f == 'jobs' then
    redis.call('EXPIRE', KEYS[5], 90000)
  end
end
redis.call('PUBLISH', ARGV[4], res)
if ARGV[6] ~= '0' then
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[6], '*', 'result', res)
end
if job.stream == true then
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[7], '*', 'type', 'end', 'result', res)
  redis.call('EXPIRE', KEYS[7], ARGV[8])
end
redis.call('PUBLISH', ARGV[5], id)
return 'removed'
