-- front_settle.lua -- where a front-door job is once its request's wait bound has passed.
-- Takes the job off the queue when it is still there (then it never runs), else says
-- whether it can still be found: its result stored, or a worker's in-flight list holding it.
-- A job found nowhere never reached the queue or was lost with it (a DEL'd queue): it will
-- not run. Never SCANs: the in-flight list of worker w is <prefix>:inflight:<w>, and every
-- worker holding jobs is in the workers zset (reap.lua and handback.lua empty a worker's
-- list before it leaves). Runs only for requests unanswered at their bound: O(workers x
-- their in-flight jobs).
-- KEYS[1]  the queue (planb:q:<http.queue>)
-- KEYS[2]  the workers zset (planb:workers)
-- KEYS[3]  the job's result key (planb:result:<id>)
-- ARGV[1]  the job JSON, the exact bytes pushed
-- ARGV[2]  the in-flight list prefix ("planb:inflight:")
-- Returns  "REMOVED", "FINISHED", "RUNNING" or "LOST"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
  return 'REMOVED'
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 'FINISHED'
end
for _, w in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('LPOS', ARGV[2] .. w, ARGV[1]) then
    return 'RUNNING'
  end
end
return 'LOST'
