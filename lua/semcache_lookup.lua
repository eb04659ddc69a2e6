-- semcache_lookup.lua -- candidates for a semantic lookup: ids in the probed LSH buckets,
-- ranked by how many buckets they share with the question, with the head of each entry
-- (scope line, vector, question) for the exact cosine and the guard, which run in C.
-- Ids whose entry has expired are removed from the probed buckets on the way.
-- KEYS[1..] bucket sets to probe (planb:sem:b:<scope>:<table>:<code>)
-- ARGV[1]  entry key prefix (planb:sem:e:)
-- ARGV[2]  most candidates returned
-- ARGV[3]  bytes of each entry's head returned
-- ARGV[4]  most ids read from one bucket (a random sample past that)
-- Returns  {id1, head1, id2, head2, ...}, most votes first
local cap = tonumber(ARGV[4])
local votes, order = {}, {}
for i = 1, #KEYS do
  local ids
  if redis.call('SCARD', KEYS[i]) > cap then
    ids = redis.call('SRANDMEMBER', KEYS[i], cap)
  else
    ids = redis.call('SMEMBERS', KEYS[i])
  end
  for _, id in ipairs(ids) do
    if votes[id] then
      votes[id] = votes[id] + 1
    else
      votes[id] = 1
      order[#order + 1] = id
    end
  end
end
table.sort(order, function(a, b)
  if votes[a] ~= votes[b] then
    return votes[a] > votes[b]
  end
  return a < b
end)
local out = {}
for i = 1, math.min(#order, tonumber(ARGV[2])) do
  local id = order[i]
  local head = redis.call('GETRANGE', ARGV[1] .. id, 0, tonumber(ARGV[3]) - 1)
  if head == '' then
    for k = 1, #KEYS do
      redis.call('SREM', KEYS[k], id)
    end
  else
    out[#out + 1] = id
    out[#out + 1] = head
  end
end
return out
