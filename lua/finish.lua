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
-- KEYS[9]  this minute's stats hash (planb:stats:m:<unix minute>): every increment again,
--          kept 25 hours for the 1/5/60-minute rates and the admin page's history
-- KEYS[10] the job's answer stream (planb:stream:<id>; "-" when it did not ask to stream)
-- KEYS[11] its run hash (planb:streamrun:<id>, see stream_add.lua; "-" likewise)
-- ARGV[1]  the raw job exactly as claimed (LREM'd from the tail: the oldest claims sit there)
-- ARGV[2]  result JSON ("" = no result: an invalid job whose id could not be read)
-- ARGV[3]  result TTL in seconds
-- ARGV[4]  reply TTL in seconds ("0" = the job did not ask for a reply list)
-- ARGV[5]  results channel (planb:results)
-- ARGV[6]  dead-letter entry ("" = none; one is counted as dead:added)
-- ARGV[7]  events stream MAXLEN, approximate ("0" = no stream)
-- ARGV[8]  dead-letter list bound: the newest this many are kept, trims counted (dead:trimmed)
-- ARGV[9]  answer stream MAXLEN ("0" = the job did not stream): its one `end` entry, with
--          the result, is added here with the result, so it is there exactly once, last
-- ARGV[10] answer stream TTL in seconds
-- ARGV[11] the run's token (stream_add.lua): when another run owns the job's stream, this
--          finish still stores the result (one result per id comes first: the owner may be a
--          run whose claim was handed back, which nothing would reap), empties the stream
--          (XTRIM, as a takeover does) and ends it with this result.
-- ARGV[12..] stats hash field, increment, field, increment, ...
-- Returns  1 stored, 0 duplicate (a result already existed)
local acked = redis.call('LREM', KEYS[1], -1, ARGV[1])
if acked == 1 and redis.call('EXISTS', KEYS[7]) == 1 then
  local sha = redis.sha1hex(ARGV[1])
  if redis.call('HDEL', KEYS[7], sha) == 1 and redis.call('GET', KEYS[8]) == sha then
    redis.call('DEL', KEYS[8])
  end
end
local trim = false
if ARGV[2] ~= '' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return 0
  end
  if ARGV[9] ~= '0' then
    local owner = redis.call('HGET', KEYS[11], 'owner')
    trim = owner ~= false and owner ~= ARGV[11]
  end
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
  if ARGV[9] ~= '0' then
    redis.call('DEL', KEYS[11]) -- the result now closes the stream to every run
  end
  if ARGV[4] ~= '0' then
    redis.call('RPUSH', KEYS[3], ARGV[2])
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  end
end
if ARGV[6] ~= '' then
  local n, max = redis.call('LPUSH', KEYS[5], ARGV[6]), tonumber(ARGV[8])
  redis.call('HINCRBY', KEYS[4], 'dead:added', 1)
  if n > max then
    redis.call('LTRIM', KEYS[5], 0, max - 1)
    redis.call('HINCRBY', KEYS[4], 'dead:trimmed', n - max)
  end
end
for i = 12, #ARGV - 1, 2 do
  local f = ARGV[i]
  redis.call('HINCRBY', KEYS[4], f, ARGV[i + 1])
  -- the first job of the minute creates the hash: set its lifetime once
  if redis.call('HINCRBY', KEYS[9], f, ARGV[i + 1]) == tonumber(ARGV[i + 1]) and f == 'jobs' then
    redis.call('EXPIRE', KEYS[9], 90000)
  end
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[5], ARGV[2])
  if ARGV[7] ~= '0' then
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[7], '*', 'result', ARGV[2])
  end
  if ARGV[9] ~= '0' then
    if trim then
      redis.call('XTRIM', KEYS[10], 'MAXLEN', 0)
    end
    redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[9], '*', 'type', 'end', 'result', ARGV[2])
    redis.call('EXPIRE', KEYS[10], ARGV[10])
  end
end
return 1
