-- heartbeat.lua -- stamp a worker's lease with Redis's own clock, so host clocks never matter.
-- KEYS[1]  workers zset (planb:workers)
-- ARGV[1]  worker id ("host:pid")
-- Returns  the stamp in milliseconds
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
return ms
