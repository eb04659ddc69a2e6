-- semcache_shadow.lua -- shadow mode: counts a would-be semantic hit and whether the model's
-- answer agreed with it, and keeps a sample for operators to read.
-- KEYS[1]  stats hash (planb:stats)
-- KEYS[2]  sample list (planb:sem:shadow), newest first
-- ARGV[1]  "semantic:shadow_agree" or "semantic:shadow_disagree"
-- ARGV[2]  sample JSON ("" = not sampled)
-- ARGV[3]  most samples kept
-- Returns  1
redis.call('HINCRBY', KEYS[1], 'semantic:shadow_hits', 1)
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[2] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
end
return 1
