-- semcache_insert.lua -- adds one question/answer to the semantic index, then trims the index.
-- An entry is a string whose first line names its scope, insert time and LSH bucket codes
-- ("<scope> <ms> <c0>,<c1>,...\n", then the binary vector, question and answer), so it can
-- be taken out of its buckets again without the embedder. Work per call is bounded: at most
-- 16 expired and 16 surplus entries are removed.
-- KEYS[1]  entry key (planb:sem:e:<id>)
-- KEYS[2]  index zset (planb:sem:index): id -> insert time in ms
-- KEYS[3..] bucket sets (planb:sem:b:<scope>:<table>:<code>), one per LSH table
-- ARGV[1]  id (decimal integer, so bucket sets stay intsets)
-- ARGV[2]  entry bytes
-- ARGV[3]  seconds the index keeps an entry (ttl_s + stale_if_error_s)
-- ARGV[4]  now in ms
-- ARGV[5]  max_entries
-- ARGV[6]  entry key prefix (planb:sem:e:)
-- ARGV[7]  bucket key prefix (planb:sem:b:)
-- Returns  the number of entries removed (expired, replaced or evicted)
local keep_s = tonumber(ARGV[3])
local slack_s = keep_s + 3600 -- keys outlive the index's own expiry, which removes them exactly
local removed = 0
local function unindex(id)
  local ekey = ARGV[6] .. id
  local head = redis.call('GETRANGE', ekey, 0, 255)
  local scope, codes = string.match(head, '^(%x+) %d+ ([%d,]+)\n')
  if scope then
    local t = 0
    for code in string.gmatch(codes, '%d+') do
      redis.call('SREM', ARGV[7] .. scope .. ':' .. t .. ':' .. code, id)
      t = t + 1
    end
  end
  redis.call('DEL', ekey)
  redis.call('ZREM', KEYS[2], id)
  removed = removed + 1
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  unindex(ARGV[1])
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', slack_s)
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], slack_s)
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], slack_s)
local cutoff = tonumber(ARGV[4]) - keep_s * 1000
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff, 'LIMIT', 0, 16)) do
  unindex(id)
end
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, math.min(over, 16) - 1)) do
    unindex(id)
  end
end
return removed
