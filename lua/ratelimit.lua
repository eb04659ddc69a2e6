-- ratelimit.lua -- a model's shared requests-per-minute and tokens-per-minute limits.
-- Sliding windows over the last 60 s (Redis TIME), so no 60 s span ever sees more than rpm
-- requests: a zset holds one stamp per granted request; a hash holds tokens per second.
-- KEYS[1]  request stamps (zset, planb:ratelimit:<model>)
-- KEYS[2]  tokens per second (hash, planb:tokens:<model>)
-- ARGV[1]  op: acquire | usage
-- ARGV[2]  acquire: rpm (0 = none); usage: tokens used
-- ARGV[3]  acquire: tpm (0 = none)
-- ARGV[4]  acquire: a member unique to this request (worker id and a sequence number)
-- Returns  acquire: 0 granted (the request is counted), else ms until it may be granted;
--          usage: 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local sec = math.floor(now / 1000)
if ARGV[1] == 'usage' then
  redis.call('HINCRBY', KEYS[2], sec, ARGV[2])
  redis.call('EXPIRE', KEYS[2], 120)
  return 0
end
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return math.max(1, tonumber(oldest[2]) + 60000 - now)
  end
end
if tpm > 0 then
  local all = redis.call('HGETALL', KEYS[2])
  local used, first = 0, nil
  for i = 1, #all, 2 do
    local s = tonumber(all[i])
    if s <= sec - 60 then
      redis.call('HDEL', KEYS[2], all[i])
    else
      used = used + tonumber(all[i + 1])
      if first == nil or s < first then
        first = s
      end
    end
  end
  if used >= tpm then
    return math.max(1, (first + 61) * 1000 - now)
  end
end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
return 0
