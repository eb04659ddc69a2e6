-- breaker.lua -- one model's shared circuit breaker, Retry-After hold and refused-key hold.
-- States: closed -> open when, over the sliding window (per-second buckets), at least min_calls
-- calls were made and the share that failed reaches failure_rate, or the share slower than
-- slow_call_ms reaches slow_call_rate, or `consecutive` calls failed in a row; open -> after
-- the open time, up to half_open_calls callers win a probe -> half_open; half_open_calls
-- successful probes close it, one failed probe opens it again for twice the last open time
-- (capped by max_open_ms). A probe holder that vanishes loses its probe after lease_ms.
-- Workers count calls locally and add them in the "report" they send every 200 ms anyway, so
-- counting costs no round trip per call. Times come from Redis (TIME), so every host agrees;
-- reports and replies carry durations (ms before now), not stamps.
-- "In a row" is across every worker and host, in the order calls completed: the hash keeps
-- last_ok (when the latest success anywhere completed) and fails_at, the completion times of
-- the newest `consecutive` failures after it. A report's own success moves last_ok and drops
-- the failures before it, even when other workers reported those failures first; so batches
-- of any size, in any order of arrival, count only failures no success came between.
-- Forced (the hash's `forced` field, set by the admin API): "open" refuses every call and
-- "closed" allows every call whatever the counts. Either way the rules are suspended: reports
-- are not counted, no probe changes anything, nothing transitions or is alerted, and the key
-- does not expire; Retry-After and refused-key holds still apply. When `forced` is removed the
-- rules resume from the state as it was.
-- KEYS[1]  breaker hash (planb:breaker:<model>)
-- KEYS[2]  stats hash (planb:stats): transitions counted as breaker:<model>:<state>
-- ARGV[1]  op: report | probe | probe_ok | probe_fail | hold | refused
-- ARGV[2]  model name (alerts and counters)
-- ARGV[3]  alerts channel (planb:alerts)
-- ARGV[4]  settings "on window_s failure_rate min_calls consecutive slow_call_rate
--          half_open_calls open_ms max_open_ms" (space-separated; on = 0 turns breaking off)
-- ARGV[5]  report: "calls fails slow ok_age fail_age..." (ok_age: ms since the batch's last
--          success, -1 none; then the ages of the failures after it, the newest
--          `consecutive`, oldest first); probe: lease ms;
--          hold: hold ms (Retry-After, already capped); refused: hold ms; else unused
-- ARGV[6]  refused: the HTTP status, for the alert
-- Returns  {state (0 closed, 1 open, 2 half_open), open_left_ms (open: until a probe may
--          start; half_open: until the probe lease ends), not_before_left_ms, granted (probe),
--          refused_left_ms}; forced open is {1, FORCED_LEFT_MS, ...} (no probe is asked for
--          until a report after the release says otherwise), forced closed {0, 0, ...}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sec = tonumber(t[1])
local op, model, alerts = ARGV[1], ARGV[2], ARGV[3]
local s = {}
for v in string.gmatch(ARGV[4], '%S+') do
  s[#s + 1] = tonumber(v)
end
local on, window_s, failure_rate, min_calls = s[1], s[2], s[3], s[4]
local consecutive, slow_rate, half_open_calls, open_ms, max_open_ms = s[5], s[6], s[7], s[8], s[9]
-- Buckets are one second wide up to a 60 s window, wider past it (60 buckets at most), so a
-- report costs the same whatever the window.
local bucket_s = math.max(1, math.ceil(window_s / 60))
local nbuckets = math.ceil(window_s / bucket_s)
local nslots = nbuckets + 1
local bucket = math.floor(sec / bucket_s)

local h = redis.call('HMGET', KEYS[1], 'state', 'open_until', 'open_ms', 'probe_until', 'probes',
                     'probe_ok', 'not_before', 'refused_until', 'consec', 'last_ok',
                     'fails_at', 'forced')
local state = h[1] or 'closed'
local open_until, cur_open_ms = tonumber(h[2] or '0'), tonumber(h[3] or tostring(open_ms))
local probe_until, probes, probe_ok = tonumber(h[4] or '0'), tonumber(h[5] or '0'),
                                      tonumber(h[6] or '0')
local not_before, refused_until = tonumber(h[7] or '0'), tonumber(h[8] or '0')
local consec = tonumber(h[9] or '0')
local last_ok = tonumber(h[10] or '0')
local fails_at = h[11] or ''
local forced = (h[12] == 'open' or h[12] == 'closed') and h[12] or nil
-- What a forced open tells the workers is left: longer than their 200 ms report period, so
-- they skip the model without asking for probes until a report brings the release.
local FORCED_LEFT_MS = 1000
local granted = 0
local dirty = op == 'hold' or op == 'refused' or (op ~= 'report' and not forced)

local function publish(o)
  o.model, o.at_ms = model, now
  redis.call('PUBLISH', alerts, cjson.encode(o))
end

-- Forgets every bucket: a closed breaker starts counting afresh (old failures must not
-- reopen it), and an open one does not count the stragglers that were already in flight.
-- The hash fields of the window's slots.
local function slot_fields()
  local f = {}
  for i = 0, nslots - 1 do
    f[#f + 1] = 't' .. i
  end
  return f
end

local function clear_window()
  local f = slot_fields()
  f[#f + 1] = 'w_calls'
  f[#f + 1] = 'w_fails'
  f[#f + 1] = 'w_slow'
  redis.call('HDEL', KEYS[1], unpack(f))
  consec, fails_at = 0, ''
end

-- Merges a report's success and its failures (ages[first..]) into the shared run: last_ok moves to the latest
-- success, then the failures completed after it are kept, the newest `consecutive` of them
-- (enough: if that many followed the latest success, the newest that many did). A failure in
-- the same ms as a success is taken to precede it.
local function merge_run(ok_age, ages, first)
  if ok_age >= 0 and now - ok_age > last_ok then
    last_ok = now - ok_age
  end
  local all = {}
  for v in string.gmatch(fails_at, '%d+') do
    all[#all + 1] = tonumber(v)
  end
  for i = first, #ages do
    all[#all + 1] = now - ages[i]
  end
  table.sort(all)
  local kept = {}
  for i = math.max(1, #all - consecutive + 1), #all do
    if all[i] > last_ok then
      kept[#kept + 1] = all[i]
    end
  end
  consec, fails_at = #kept, table.concat(kept, ' ')
end

local function transition(to, why)
  state = to
  dirty = true
  redis.call('HINCRBY', KEYS[2], 'breaker:' .. model .. ':' .. to, 1)
  publish({type = 'breaker', state = to, reason = why})
end

local function open(why, ms)
  cur_open_ms = ms
  open_until = now + ms
  probes, probe_ok = 0, 0
  clear_window()
  transition('open', why)
end

-- The window's sums: slot t<i> holds "bucket calls fails slow" for one bucket.
local function window_sums()
  local v = redis.call('HMGET', KEYS[1], unpack(slot_fields()))
  local calls, fails, slow = 0, 0, 0
  for i = 1, nslots do
    if v[i] then
      local at, c, fl, sl = string.match(v[i], '(%d+) (%d+) (%d+) (%d+)')
      if at and bucket - tonumber(at) < nbuckets then
        calls, fails, slow = calls + tonumber(c), fails + tonumber(fl), slow + tonumber(sl)
      end
    end
  end
  return calls, fails, slow
end

if forced then
  granted = (op == 'probe' and forced == 'closed') and 1 or 0
elseif op == 'report' then
  local r = {}
  for v in string.gmatch(ARGV[5], '%S+') do
    r[#r + 1] = tonumber(v)
  end
  local calls, fails, slow, ok_age = r[1], r[2], r[3], r[4]
  if on == 1 and state == 'closed' and calls > 0 then
    local slot = 't' .. (bucket % nslots)
    local cur = redis.call('HGET', KEYS[1], slot)
    local at, c, fl, sl = nil, 0, 0, 0
    if cur then
      at, c, fl, sl = string.match(cur, '(%d+) (%d+) (%d+) (%d+)')
    end
    if tonumber(at) ~= bucket then
      c, fl, sl = 0, 0, 0
    end
    redis.call('HSET', KEYS[1], slot, bucket .. ' ' .. (c + calls) .. ' ' .. (fl + fails) .. ' ' ..
               (sl + slow))
    if consecutive > 0 then
      merge_run(ok_age, r, 5)
    end
    dirty = true
    local wc, wf, ws = window_sums()
    redis.call('HSET', KEYS[1], 'w_calls', wc, 'w_fails', wf, 'w_slow', ws)
    if consecutive > 0 and consec >= consecutive then
      open(consec .. ' consecutive failures', open_ms)
    elseif wc >= min_calls and wf > 0 and wf >= failure_rate * wc then
      open(string.format('%d of %d calls failed within %d s', wf, wc, window_s), open_ms)
    elseif slow_rate > 0 and wc >= min_calls and ws > 0 and ws >= slow_rate * wc then
      open(string.format('%d of %d calls were slow within %d s', ws, wc, window_s), open_ms)
    end
  end
elseif op == 'probe' then
  local lease = tonumber(ARGV[5])
  if state == 'closed' then
    granted = 1
  elseif state == 'open' and now >= open_until then
    probes, probe_ok, probe_until = 1, 0, now + lease
    transition('half_open', 'probing')
    granted = 1
  elseif state == 'half_open' then
    if now >= probe_until then
      probes = probe_ok -- the holders of unfinished probes are gone: hand their probes on
    end
    if probes < half_open_calls then
      probes, probe_until = probes + 1, now + lease
      granted = 1
    end
  end
elseif op == 'probe_ok' then
  if state == 'half_open' then
    probe_ok = probe_ok + 1
    if probe_ok >= half_open_calls then
      cur_open_ms, probes, probe_ok = open_ms, 0, 0
      clear_window()
      transition('closed', half_open_calls .. ' probe(s) succeeded')
    end
  end
elseif op == 'probe_fail' then
  if state == 'half_open' then
    open('probe failed', math.min(max_open_ms, cur_open_ms * 2))
  end
end
if op == 'hold' then
  local hold = tonumber(ARGV[5])
  if hold > 0 and now + hold > not_before then
    not_before = now + hold
  end
elseif op == 'refused' then
  local hold = tonumber(ARGV[5])
  if now >= refused_until then
    redis.call('HINCRBY', KEYS[2], 'breaker:' .. model .. ':refused', 1)
    publish({type = 'model_refused', status = tonumber(ARGV[6]), hold_ms = hold,
             reason = 'the provider refused the key (HTTP ' .. ARGV[6] .. '): skipped by every ' ..
                      'worker until the hold ends'})
  end
  refused_until = now + hold
end

if dirty then
  redis.call('HSET', KEYS[1], 'state', state, 'open_until', open_until, 'open_ms', cur_open_ms,
             'probe_until', probe_until, 'probes', probes, 'probe_ok', probe_ok,
             'not_before', not_before, 'refused_until', refused_until, 'consec', consec,
             'last_ok', last_ok, 'fails_at', fails_at)
  if not forced then
    redis.call('PEXPIRE', KEYS[1], 86400000 + max_open_ms +
               math.max(0, not_before - now, refused_until - now))
  end
end
if forced then
  redis.call('PERSIST', KEYS[1]) -- an operator's switch lasts until released (a no-op mostly)
end
local code, left = 0, 0
if forced == 'open' then
  code, left = 1, FORCED_LEFT_MS
elseif forced == 'closed' then
  code, left = 0, 0
elseif state == 'open' then
  code, left = 1, math.max(0, open_until - now)
elseif state == 'half_open' then
  -- 0 while probes are left to hand out: callers then ask for one instead of skipping.
  code, left = 2, probes < half_open_calls and 0 or math.max(0, probe_until - now)
end
return {code, left, math.max(0, not_before - now), granted, math.max(0, refused_until - now)}
