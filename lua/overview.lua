-- overview.lua -- what the admin page's overview shows, in one read (admin process, every
-- admin.refresh_ms, whatever the number of viewers). Its cost is bounded by the config (queues,
-- models), the workers alive and the minutes asked for, never by queue or dead-letter lengths:
-- a queue costs LLEN and one LINDEX (its oldest job, parsed only when under 64 KiB).
-- ARGV[1]  key prefix
-- ARGV[2]  number of queues Q, then Q queue names
-- then     number of models M, then M model names
-- then     unix minutes whose stats hashes (planb:stats:m:<minute>) to return
-- Returns  JSON: {"now_ms", "queues":[{"depth","oldest_ms"}], "paused":{queue: JSON},
--          "workers":[[id, last beat ms, in flight]], "breakers":[{...}], "rpm":[n],
--          "tpm":[n], "dead", "totals":{...}, "minutes":{"<minute>":{field: n}}}
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now_ms = now, queues = {}, workers = {}, breakers = {}, rpm = {}, tpm = {},
             minutes = {}}
local i = 2
local nq = tonumber(ARGV[i])
for q = 1, nq do
  local key = prefix .. ':q:' .. ARGV[i + q]
  local depth = redis.call('LLEN', key)
  local oldest = cjson.null
  if depth > 0 then
    local job = redis.call('LINDEX', key, -1)
    if job and #job <= 65536 then
      local ok, j = pcall(cjson.decode, job)
      if ok and type(j) == 'table' and type(j.submitted_at_ms) == 'number' then
        oldest = j.submitted_at_ms
      end
    end
  end
  out.queues[q] = {depth = depth, oldest_ms = oldest}
end
i = i + nq + 1
local paused = redis.call('HGETALL', prefix .. ':paused')
out.paused = {}
for k = 1, #paused, 2 do
  out.paused[paused[k]] = paused[k + 1]
end
local ws = redis.call('ZRANGE', prefix .. ':workers', 0, 1023, 'WITHSCORES')
for k = 1, #ws, 2 do
  out.workers[#out.workers + 1] = {ws[k], tonumber(ws[k + 1]),
                                   redis.call('LLEN', prefix .. ':inflight:' .. ws[k])}
end
local nm = tonumber(ARGV[i])
local sec = math.floor(now / 1000)
for m = 1, nm do
  local name = ARGV[i + m]
  local h = redis.call('HMGET', prefix .. ':breaker:' .. name, 'state', 'open_until',
                       'probe_until', 'forced', 'forced_by', 'forced_at')
  out.breakers[m] = {state = h[1] or 'closed', open_until = tonumber(h[2] or '0'),
                     probe_until = tonumber(h[3] or '0'), forced = h[4] or cjson.null,
                     forced_by = h[5] or cjson.null, forced_at = tonumber(h[6] or '0')}
  out.rpm[m] = redis.call('ZCOUNT', prefix .. ':ratelimit:' .. name, now - 60000, '+inf')
  local used, tok = 0, redis.call('HGETALL', prefix .. ':tokens:' .. name)
  for k = 1, #tok, 2 do
    if tonumber(tok[k]) > sec - 60 then
      used = used + tonumber(tok[k + 1])
    end
  end
  out.tpm[m] = used
end
i = i + nm + 1
out.dead = redis.call('LLEN', prefix .. ':dead')
local tf = {'jobs', 'ok', 'degraded', 'invalid', 'handbacks', 'poisoned', 'dead:trimmed',
            'finish:held', 'duplicates', 'orphans'}
local tv = redis.call('HMGET', prefix .. ':stats', unpack(tf))
out.totals = {}
for k = 1, #tf do
  out.totals[tf[k]] = tonumber(tv[k] or '0')
end
for k = i, #ARGV do
  local h = redis.call('HGETALL', prefix .. ':stats:m:' .. ARGV[k])
  if #h > 0 then
    local m = {}
    for f = 1, #h, 2 do
      m[h[f]] = tonumber(h[f + 1])
    end
    out.minutes[ARGV[k]] = m
  end
end
return cjson.encode(out)
