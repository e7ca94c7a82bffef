-- Take one token from a shared bucket, atomically, on Redis's own clock.
-- Mirrors proxy/bucket.py:reserve (keep the two in step; one test suite runs against both).
--
-- KEYS[1]  the bucket hash (hash-tagged: one slot on Redis Cluster)
-- ARGV[1]  refill rate, tokens per second
-- ARGV[2]  capacity (burst)
-- ARGV[3]  longest wait a caller accepts, seconds (a token may be reserved that far ahead)
-- ARGV[4]  idle expiry of the hash, milliseconds
-- Returns {allowed (1/0), tokens left, seconds (the wait if allowed, else retry-after), refusal reason}
-- Stored numbers keep 17 significant digits (tostring keeps 14: it would round the epoch `ts` to 0.1 ms).
local function num(x) return string.format('%.17g', x) end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked_until', 'up_remaining', 'up_reset')
local tokens = tonumber(state[1]) or capacity
local last = tonumber(state[2]) or now
local blocked_until = tonumber(state[3]) or 0
local up_remaining = tonumber(state[4])
local up_reset = tonumber(state[5])

-- Braze said stop (a 429): nobody calls before its reset.
if now < blocked_until then
  return {0, tostring(tokens), tostring(blocked_until - now), 'blocked'}
end
-- Braze said how much remains before its reset: never plan past it.
local braze_window = up_remaining ~= nil and up_reset ~= nil and now < up_reset
if braze_window and up_remaining < 1 then
  return {0, tostring(tokens), tostring(up_reset - now), 'braze'}
end

tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)
local after = tokens - 1
local wait = 0
if after < 0 then
  wait = -after / rate
end
if wait > max_wait then
  return {0, tostring(tokens), tostring(wait - max_wait), 'tokens'}
end
redis.call('HSET', KEYS[1], 'tokens', num(after), 'ts', num(now))
if braze_window then
  redis.call('HSET', KEYS[1], 'up_remaining', num(up_remaining - 1))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, tostring(after), tostring(wait), ''}
