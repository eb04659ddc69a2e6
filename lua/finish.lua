-- finish.lua -- a job's one result: ack, store, reply, count, publish, dead-letter, atomically.
-- Exactly one result per id: when a result for the id is already stored (the job ran
-- twice after a hand-back), the job is only acked; nothing is stored, counted or published.
-- A job that was still in this worker's list also loses its hand-back count (planb:deliveries);
-- one reaped from under a slow worker keeps it, so its re-delivery is acked from this result.
-- KEYS[1]  in-flight list of the worker that ran the job
-- KEYS[2]  result key (planb:result:<id>)
-- KEYS[3]  reply list (planb:reply:<id>)
-- KEYS[4]  stats hash (planb:stats)
-- KEYS[5]  dead-letter list (planb:dead)
-- KEYS[6]  events stream (planb:events): every result, for consumers that missed a publish
-- KEYS[7]  deliveries hash (planb:deliveries)
-- KEYS[8]  the worker's suspect key (planb:suspect:<worker>, see claim.lua)
-- ARGV[1]  the raw job exactly as claimed (LREM'd from the tail: the oldest claims sit there)
-- ARGV[2]  result JSON ("" = no result: an invalid job whose id could not be read)
-- ARGV[3]  result TTL in seconds
-- ARGV[4]  reply TTL in seconds ("0" = the job did not ask for a reply list)
-- ARGV[5]  results channel (planb:results)
-- ARGV[6]  dead-letter entry ("" = none)
-- ARGV[7]  events stream MAXLEN, approximate ("0" = no stream)
-- ARGV[8..] stats hash field, increment, field, increment, ...
-- Returns  1 stored, 0 duplicate (a result already existed)
local acked = redis.call('LREM', KEYS[1], -1, ARGV[1])
if acked == 1 and redis.call('EXISTS', KEYS[7]) == 1 then
  local sha = redis.sha1hex(ARGV[1])
  if redis.call('HDEL', KEYS[7], sha) == 1 and redis.call('GET', KEYS[8]) == sha then
    redis.call('DEL', KEYS[8])
  end
end
if ARGV[2] ~= '' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return 0
  end
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  if ARGV[4] ~= '0' then
    redis.call('RPUSH', KEYS[3], ARGV[2])
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  end
end
if ARGV[6] ~= '' then
  redis.call('LPUSH', KEYS[5], ARGV[6])
end
for i = 8, #ARGV - 1, 2 do
  redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1])
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[2])
  if ARGV[7] ~= '0' then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', 'result', ARGV[2])
  end
end
return 1
