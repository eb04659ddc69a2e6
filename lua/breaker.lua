-- breaker.lua -- one model's shared circuit breaker and Retry-After hold, for every worker.
-- States: closed -> (failures retryable failures within window_ms) -> open -> (open_ms later,
-- one caller wins "probe") -> half_open -> "ok" closes it, "fail" opens it again. A probe
-- holder that vanishes loses the probe after lease_ms, so another caller can take it.
-- Times come from Redis (TIME), so every host agrees; replies carry durations, not stamps.
-- KEYS[1]  breaker hash (planb:breaker:<model>)
-- KEYS[2]  stats hash (planb:stats): transitions counted as breaker:<model>:<state>
-- ARGV[1]  op: get | fail | ok | probe
-- ARGV[2]  model name (alerts and counters)
-- ARGV[3]  failures that open it (0 = the breaker is off; holds still apply)
-- ARGV[4]  window_ms
-- ARGV[5]  open_ms
-- ARGV[6]  fail: hold the model this many ms (Retry-After, 0 = none); probe: lease ms
-- ARGV[7]  alerts channel (planb:alerts)
-- Returns  {state (0 closed, 1 open, 2 half_open), open_left_ms (open: until a probe may
--          start; half_open: until the probe lease ends), not_before_left_ms, granted (probe)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, model = ARGV[1], ARGV[2]
local failures, window_ms, open_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local arg = tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'state', 'fails', 'win_start', 'open_until', 'probe_until',
                     'not_before')
local state = h[1] or 'closed'
local fails, win_start = tonumber(h[2] or '0'), tonumber(h[3] or '0')
local open_until, probe_until = tonumber(h[4] or '0'), tonumber(h[5] or '0')
local not_before = tonumber(h[6] or '0')
local granted = 0

local function transition(to, why)
  state = to
  redis.call('HINCRBY', KEYS[2], 'breaker:' .. model .. ':' .. to, 1)
  redis.call('PUBLISH', ARGV[7], cjson.encode({type = 'breaker', model = model, state = to,
                                               reason = why, at_ms = now}))
end

if op == 'fail' then
  if arg > 0 and now + arg > not_before then
    not_before = now + arg
  end
  if state == 'half_open' then
    open_until = now + open_ms
    transition('open', 'probe failed')
  elseif state == 'closed' and failures > 0 then
    if now - win_start >= window_ms then
      fails, win_start = 0, now
    end
    fails = fails + 1
    if fails >= failures then
      fails, open_until = 0, now + open_ms
      transition('open', failures .. ' failures within ' .. window_ms .. ' ms')
    end
  end
elseif op == 'ok' then
  if state == 'half_open' or (state == 'open' and now >= open_until) then
    fails, win_start = 0, now
    transition('closed', 'probe succeeded')
  end
elseif op == 'probe' then
  if state == 'closed' then
    granted = 1
  elseif (state == 'open' and now >= open_until) or (state == 'half_open' and now >= probe_until) then
    probe_until = now + arg
    if state == 'open' then
      transition('half_open', 'probing')
    end
    granted = 1
  end
end

if op ~= 'get' then
  redis.call('HSET', KEYS[1], 'state', state, 'fails', fails, 'win_start', win_start,
             'open_until', open_until, 'probe_until', probe_until, 'not_before', not_before)
  redis.call('PEXPIRE', KEYS[1], 86400000 + open_ms + math.max(0, not_before - now))
end
local code, left = 0, 0
if state == 'open' then
  code, left = 1, math.max(0, open_until - now)
elseif state == 'half_open' then
  code, left = 2, math.max(0, probe_until - now)
end
return {code, left, math.max(0, not_before - now), granted}
