-- cache_put.lua -- store a fresh answer and give up the key's herd lock, atomically.
-- The entry is JSON stamped with Redis's clock; it lives for TTL + stale_if_error_s and is
-- judged fresh or stale at read time. The lock is only deleted when the caller holds it.
-- KEYS[1]  cache entry (planb:cache:<sha256>)
-- KEYS[2]  its herd lock
-- ARGV[1]  answer text
-- ARGV[2]  model name
-- ARGV[3]  model tier
-- ARGV[4]  prompt tokens ("-1" = unknown)
-- ARGV[5]  completion tokens ("-1" = unknown)
-- ARGV[6]  entry lifetime in seconds (ttl_s + stale_if_error_s)
-- ARGV[7]  lock token ("" = the caller holds no lock)
-- ARGV[8]  the answer's extras as JSON text {tool_calls, refusal, finish_reason}, "" = none
-- Returns  the stored_at stamp (seconds)
local t = redis.call('TIME')
local now = tonumber(t[1])
local usage = {}
if tonumber(ARGV[4]) >= 0 then usage.prompt_tokens = tonumber(ARGV[4]) end
if tonumber(ARGV[5]) >= 0 then usage.completion_tokens = tonumber(ARGV[5]) end
local fields = {content = ARGV[1], model = ARGV[2], tier = tonumber(ARGV[3]),
                stored_at = now, usage = usage}
if ARGV[8] and ARGV[8] ~= '' then fields.message = ARGV[8] end
local entry = cjson.encode(fields)
redis.call('SET', KEYS[1], entry, 'EX', ARGV[6])
if ARGV[7] ~= '' and redis.call('GET', KEYS[2]) == ARGV[7] then
  redis.call('DEL', KEYS[2])
end
return now
