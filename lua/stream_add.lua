-- stream_add.lua -- one entry of a streamed job's answer, added only by the run that owns it.
-- A job can run twice at once: a worker stopped past its lease (SIGSTOP, a paused VM) wakes
-- while the reaper's hand-back runs the job elsewhere, a claim lost at a failover, or a
-- finish lost at one (its worker runs the job again). Each run writes with its own token,
-- "<worker id>|<run number>" (numbers grow within a worker). The stream belongs to the first
-- run that writes, and passes to another run only when the owner's worker has left
-- planb:workers (reaped, crashed, drained), or to a later run of the owner's own worker. The
-- new owner's first entry follows an XTRIM MAXLEN 0 (which keeps the last id, so readers
-- resuming by id still get every new entry): the stream then holds one run, and a reader
-- that saw the old run's pieces gets a second `start` without `continued`. Nothing is added
-- once the result is stored (finish.lua adds `end` with it, so `end` stays last). Entries
-- are numbered within a run: one sent again after its reply was lost to a reconnect, and
-- already added, is not added twice.
-- KEYS[1]  the answer stream (planb:stream:<id>)
-- KEYS[2]  its run hash (planb:streamrun:<id>): owner (token), seq (the number of the
--          owner's last entry added); finish.lua deletes it with the result
-- KEYS[3]  the result key (planb:result:<id>)
-- KEYS[4]  workers zset (planb:workers)
-- ARGV[1]  the run's token
-- ARGV[2]  the entry's number within the run (1, 2, ...)
-- ARGV[3]  MAXLEN, approximate
-- ARGV[4]  TTL in seconds of the stream and its run hash
-- ARGV[5]  "1": renew the TTL with this entry ("0": the writer renewed it less than 1 s ago)
-- ARGV[6..] field, value, ...
-- Returns  1 added, 2 added before (a re-send), 0 refused: the result is stored or another
--          live run owns the stream, so nothing more of this run will be added
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local run = redis.call('HMGET', KEYS[2], 'owner', 'seq')
local n = tonumber(ARGV[2])
local renew = ARGV[5] == '1'
if run[1] ~= ARGV[1] then
  if run[1] then
    local w, wn = string.match(run[1], '^(.*)|(%d+)$')
    local me, mn = string.match(ARGV[1], '^(.*)|(%d+)$')
    local live
    if w == me then
      live = tonumber(wn) > tonumber(mn)
    else
      live = w ~= nil and redis.call('ZSCORE', KEYS[4], w) ~= false
    end
    if live then
      return 0
    end
    redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
  end
  redis.call('HSET', KEYS[2], 'owner', ARGV[1])
  renew = true
elseif n <= tonumber(run[2] or '0') then
  return 2
end
redis.call('HSET', KEYS[2], 'seq', n)
local args = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*'}
for i = 6, #ARGV do
  args[#args + 1] = ARGV[i]
end
redis.call(unpack(args))
if renew then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
