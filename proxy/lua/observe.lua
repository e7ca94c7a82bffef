-- Record what Braze said about the budget, atomically.
-- KEYS[1]  the bucket hash
-- ARGV[1]  X-RateLimit-Remaining ('' if absent)
-- ARGV[2]  X-RateLimit-Reset, epoch seconds ('' if absent)
-- ARGV[3]  blocked until, epoch seconds ('' unless Braze answered 429)
-- ARGV[4]  idle expiry of the hash, milliseconds
-- Numbers are written with 17 significant digits: tostring keeps 14, which rounds an epoch with a fraction,
-- and a rounded reset no longer equals the same window's reset in the next answer.
local function num(x) return string.format('%.17g', x) end
local remaining = tonumber(ARGV[1])
local reset = tonumber(ARGV[2])
local blocked = tonumber(ARGV[3])
if remaining ~= nil and reset ~= nil then
  local state = redis.call('HMGET', KEYS[1], 'up_remaining', 'up_reset')
  local known_reset = tonumber(state[2])
  if known_reset == nil or reset > known_reset then
    redis.call('HSET', KEYS[1], 'up_remaining', num(remaining), 'up_reset', num(reset))
  elseif reset == known_reset then
    -- answers arrive out of order: the lowest count seen in one window is the truest
    local known = tonumber(state[1]) or remaining
    redis.call('HSET', KEYS[1], 'up_remaining', num(math.min(known, remaining)))
  end
end
if blocked ~= nil then
  local known_block = tonumber(redis.call('HGET', KEYS[1], 'blocked_until')) or 0
  if blocked > known_block then
    redis.call('HSET', KEYS[1], 'blocked_until', num(blocked))
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
