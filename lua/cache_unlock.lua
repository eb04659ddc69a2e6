-- cache_unlock.lua -- give up a key's herd lock without an answer.
-- When the holder's chain was spent, the lock is replaced by a short-lived "failed:" marker
-- naming the models it tried, so jobs waiting on it (and arriving just after) answer from a
-- stale entry or degrade at once instead of trying the same dead models again one by one.
-- KEYS[1]  the herd lock (planb:cache:<sha256>:lock)
-- ARGV[1]  lock token
-- ARGV[2]  marker ("failed:,model,model," or "" = just delete)
-- ARGV[3]  marker lifetime in ms
-- Returns  1 when the caller held the lock, else 0
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
