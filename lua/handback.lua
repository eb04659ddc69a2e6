-- handback.lua -- return a worker's unfinished jobs to the head of a queue, atomically.
-- Used by a draining worker for what it could not finish in time. The jobs are
-- pushed on the right end, which is the end workers pop next, oldest claim first.
-- KEYS[1]  the worker's in-flight list
-- KEYS[2]  the queue to return them to
-- Returns  the number of jobs handed back
local n = 0
while true do
  local job = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not job then break end
  n = n + 1
end
return n
