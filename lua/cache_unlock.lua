-- cache_unlock.lua -- give up a key's herd lock without an answer.
-- When the holder's chain was spent, the lock is replaced by a short-lived marker
-- "failed:<Redis ms>:,model,model," naming the models it tried, so the jobs that were waiting
-- on it answer from a stale entry or degrade at once instead of trying the same dead models
-- again one by one (cache_get.lua; a job arriving later ignores the marker).
-- KEYS[1]  the herd lock (planb:cache:<sha256>:lock)
-- ARGV[1]  lock token
-- ARGV[2]  models tried (",model,model,") or "" = just delete the lock
-- ARGV[3]  marker lifetime in ms
-- Returns  1 when the caller held the lock, else 0
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('SET', KEYS[1], 'failed:' .. ms .. ':' .. ARGV[2], 'PX', ARGV[3])
end
return 1
