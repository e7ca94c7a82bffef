-- Write a fetch's points into a series hash, keep the newest MAX buckets, and let the hash live as long as
-- its longest-lived point (never shorten a longer expiry another fetch set).
-- KEYS[1] the series hash; ARGV[1] lifetime in ms, ARGV[2] max buckets, then field, value pairs.
local key = KEYS[1]
redis.call('HSET', key, unpack(ARGV, 3))
local max = tonumber(ARGV[2])
local count = redis.call('HLEN', key)
if count > max then
  local fields = redis.call('HKEYS', key)
  table.sort(fields, function(a, b) return tonumber(a) < tonumber(b) end)
  for i = 1, count - max do
    redis.call('HDEL', key, fields[i])
  end
end
local ms = tonumber(ARGV[1])
if redis.call('PTTL', key) < ms then
  redis.call('PEXPIRE', key, ms)
end
return count
