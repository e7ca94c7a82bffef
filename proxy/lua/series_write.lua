-- Write a fetch's points into a series hash, keep the MAX buckets fetched most recently (the ones questions
-- asked about lately, not the latest dates), and let the hash live as long as its longest-lived point (never
-- shorten a longer expiry another fetch set).
-- KEYS[1] the series hash; ARGV[1] lifetime in ms, ARGV[2] max buckets, then field, value pairs.
-- A value is "P1|<fetched_at>|<fresh_until>|<stale_until>|<point>" (series.encode_point).
local key = KEYS[1]
redis.call('HSET', key, unpack(ARGV, 3))
local max = tonumber(ARGV[2])
local count = redis.call('HLEN', key)
if count > max then
  local all = redis.call('HGETALL', key)
  local held = {}
  for i = 1, #all, 2 do
    local fetched = tonumber(string.match(all[i + 1], '^P1|([^|]+)|')) or 0
    held[#held + 1] = {all[i], fetched, tonumber(all[i]) or 0}
  end
  table.sort(held, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  for i = 1, count - max do
    redis.call('HDEL', key, held[i][1])
  end
end
local ms = tonumber(ARGV[1])
if redis.call('PTTL', key) < ms then
  redis.call('PEXPIRE', key, ms)
end
return count
