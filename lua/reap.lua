-- reap.lua -- hand the in-flight jobs of dead workers back to the queue, atomically.
-- Two callers, both the monitor: the sweep (every worker whose last heartbeat, on
-- Redis's clock, is older than the lease) and a worker death the master saw (the named
-- workers, at once). Safe when several hosts run it at once: a script runs alone, and a
-- reaped worker is gone from the zset and its list is empty. The sweep lock only keeps
-- one host doing the sweeping; correctness never depends on it. Never SCANs: the
-- in-flight list of a worker is <prefix>:inflight:<worker id> (and its one running
-- re-delivered job, see claim.lua, is named in <prefix>:suspect:<worker id>).
-- Each job handed back is counted in the deliveries hash (field: SHA-1 of the raw job).
-- A job that has now died with its worker max_deliveries times goes to the dead list
-- with an error result (so a waiting producer is answered); one whose result already
-- exists (it ran elsewhere) is only acked.
-- KEYS[1]  workers zset (planb:workers)
-- KEYS[2]  deliveries hash (planb:deliveries)
-- KEYS[3]  queue the jobs go back to (right end: the end workers take next)
-- KEYS[4]  dead-letter list (planb:dead)
-- KEYS[5]  stats hash (planb:stats)
-- KEYS[6]  events stream (planb:events)
-- KEYS[7]  sweep lock (planb:reaper)
-- KEYS[8]  reaper clock (planb:reaper:clock): last_sweep and grace_until (ms, Redis clock).
--          Sweeps run every 250 ms; no clock yet, or a gap longer than ARGV[13] between
--          two of them, means no reaper could reach Redis (restart, outage, BUSY): nobody
--          could heartbeat either, so the lease sweep pauses for one lease from then
--          (grace) while live workers stamp again. Only a worker silent past the lease
--          after that is taken.
-- ARGV[1]  key prefix ("planb")
-- ARGV[2]  lease in ms ("0": no sweep, only the named workers)
-- ARGV[3]  max deliveries
-- ARGV[4]  result TTL s
-- ARGV[5]  reply TTL s
-- ARGV[6]  results channel (planb:results)
-- ARGV[7]  events stream MAXLEN ("0": no stream)
-- ARGV[8]  lock owner (host name)
-- ARGV[9]  lock time in ms
-- ARGV[10] the most workers one sweep reaps
-- ARGV[11] job id length limit
-- ARGV[12] dead-letter list bound (newest kept, trims counted as dead:trimmed)
-- ARGV[13] sweep gap in ms that starts a grace
-- ARGV[14] answer stream MAXLEN and ARGV[15] its TTL in seconds: a poisoned job that asked
--          to stream ("stream": true) gets its `end` entry on <prefix>:stream:<id>
-- ARGV[16..] worker ids to reap now
-- Returns  {workers reaped, jobs handed back, jobs dead-lettered, jobs acked (result existed)}
local prefix, lease, max_deliveries = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local id_max = tonumber(ARGV[11])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local victims = {}
for i = 16, #ARGV do
  victims[#victims + 1] = ARGV[i]
end
if lease > 0 then
  local last = tonumber(redis.call('HGET', KEYS[8], 'last_sweep') or '0')
  local grace = tonumber(redis.call('HGET', KEYS[8], 'grace_until') or '0')
  -- no clock at all: the first sweep on this Redis (or one restarted empty): nobody knows
  -- how long workers could not heartbeat, so that is a gap too
  if last == 0 or now - last > tonumber(ARGV[13]) then
    grace = now + lease
    redis.call('HSET', KEYS[8], 'grace_until', grace)
    redis.call('HINCRBY', KEYS[5], 'reaper:graces', 1)
  end
  redis.call('HSET', KEYS[8], 'last_sweep', now)
  redis.call('PEXPIRE', KEYS[8], 86400000)
  if now < grace then
    lease = 0
  end
end
if lease > 0 then
  local mine = redis.call('SET', KEYS[7], ARGV[8], 'NX', 'PX', ARGV[9])
  if mine or redis.call('GET', KEYS[7]) == ARGV[8] then
    redis.call('PEXPIRE', KEYS[7], ARGV[9])
    local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - lease, 'LIMIT', 0, ARGV[10])
    for _, w in ipairs(old) do
      victims[#victims + 1] = w
    end
  end
end

-- The job's id when it is readable and valid (a job id becomes part of key names).
local function job_id(job)
  local ok, j = pcall(cjson.decode, job)
  if not ok or type(j) ~= 'table' then
    return nil, nil
  end
  local id = j.id
  if type(id) ~= 'string' or #id == 0 or #id > id_max or not string.find(id, '^[%w_%.:@/%+=%-]+$') then
    return nil, j
  end
  return id, j
end

-- The dead letter and the error result of a job that keeps killing its workers.
local function poison(job, worker, n)
  local id, j = job_id(job)
  local err = 'TOO_MANY_DELIVERIES job was delivered ' .. n .. ' times and its worker died each time'
  local entry = '{"id":' .. (id and cjson.encode(id) or 'null') .. ',"error":' .. cjson.encode(err)
    .. ',"reason":"max_deliveries","worker":' .. cjson.encode(worker) .. ',"at_ms":' .. now
    .. ',"job":' .. cjson.encode(job) .. '}'
  local len, max = redis.call('LPUSH', KEYS[4], entry), tonumber(ARGV[12])
  redis.call('HINCRBY', KEYS[5], 'dead:added', 1)
  if len > max then
    redis.call('LTRIM', KEYS[4], 0, max - 1)
    redis.call('HINCRBY', KEYS[5], 'dead:trimmed', len - max)
  end
  redis.call('HINCRBY', KEYS[5], 'poisoned', 1)
  if not id or redis.call('EXISTS', prefix .. ':result:' .. id) == 1 then
    return
  end
  local res = '{"id":' .. cjson.encode(id) .. ',"status":"invalid","error":' .. cjson.encode(err)
    .. ',"attempts":[],"latency_ms":0,"worker":' .. cjson.encode(worker)
  if type(j.meta) == 'table' then
    res = res .. ',"meta":' .. cjson.encode(j.meta)
  end
  res = res .. '}'
  redis.call('SET', prefix .. ':result:' .. id, res, 'EX', ARGV[4])
  if j.reply == true then
    redis.call('RPUSH', prefix .. ':reply:' .. id, res)
    redis.call('EXPIRE', prefix .. ':reply:' .. id, ARGV[5])
  end
  redis.call('HINCRBY', KEYS[5], 'jobs', 1)
  redis.call('HINCRBY', KEYS[5], 'invalid', 1)
  redis.call('PUBLISH', ARGV[6], res)
  if ARGV[7] ~= '0' then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', 'result', res)
  end
  if j.stream == true then
    local stream = prefix .. ':stream:' .. id
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[14], '*', 'type', 'end', 'result', res)
    redis.call('EXPIRE', stream, ARGV[15])
    redis.call('DEL', prefix .. ':streamrun:' .. id)
  end
end

local reaped, back, dead, acked = 0, 0, 0, 0
for _, w in ipairs(victims) do
  local inflight = prefix .. ':inflight:' .. w
  redis.call('ZREM', KEYS[1], w)
  redis.call('DEL', prefix .. ':suspect:' .. w)
  reaped = reaped + 1
  while true do
    -- Newest claim first, each pushed on the right end: the oldest is taken first again.
    local job = redis.call('LPOP', inflight)
    if not job then break end
    local sha = redis.sha1hex(job)
    local id = job_id(job)
    if id and redis.call('EXISTS', prefix .. ':result:' .. id) == 1 then
      redis.call('HDEL', KEYS[2], sha)
      acked = acked + 1
    else
      local n = redis.call('HINCRBY', KEYS[2], sha, 1)
      if n >= max_deliveries then
        redis.call('HDEL', KEYS[2], sha)
        poison(job, w, n)
        dead = dead + 1
      else
        redis.call('RPUSH', KEYS[3], job)
        back = back + 1
      end
    end
  end
end
if back > 0 then
  redis.call('HINCRBY', KEYS[5], 'handbacks', back)
end
if acked > 0 then
  redis.call('HINCRBY', KEYS[5], 'duplicates', acked)
end
return {reaped, back, dead, acked}
