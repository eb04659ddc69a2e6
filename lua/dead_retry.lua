-- dead_retry.lua -- move one dead-lettered job back onto its queue (`planb dead retry`), atomically.
-- The job's old result and reply list are deleted so the new run can store its own result
-- (finish.lua refuses a second result for an id that already has one).
-- KEYS[1]  dead-letter list (planb:dead)
-- KEYS[2]  the queue to push the job onto (planb:q:<queue>)
-- KEYS[3]  result key (planb:result:<id>)
-- KEYS[4]  reply list (planb:reply:<id>)
-- ARGV[1]  the dead-letter entry exactly as stored
-- ARGV[2]  the raw job to push
-- Returns  1 pushed, 0 the entry was no longer there (someone else retried or purged it)
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('LPUSH', KEYS[2], ARGV[2])
return 1
