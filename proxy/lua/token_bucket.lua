-- Take one token from a shared bucket for one team, atomically, on Redis's own clock.
-- Mirrors proxy/bucket.py:reserve and proxy/fairshare.py (keep them in step; one test suite runs against both).
--
-- KEYS[1]  the bucket hash (tokens, ts, Braze's state, the decayed usage total and the active weight)
-- KEYS[2]  the teams hash: team -> "usage at weight" (decayed usage, when it was decayed, its weight)
-- KEYS[3]  the activity zset: team -> the time of its last request
--          (all three share one hash tag: one slot on Redis Cluster)
-- ARGV[1]  refill rate, tokens per second
-- ARGV[2]  capacity (burst)
-- ARGV[3]  longest wait a caller accepts, seconds (a token may be reserved that far ahead)
-- ARGV[4]  idle expiry of the keys, milliseconds
-- ARGV[5]  the team ('' for a plain bucket: no fair share)
-- ARGV[6]  its weight
-- ARGV[7]  half-life of usage, seconds
-- ARGV[8]  seconds after its last request a team stops counting as active
-- ARGV[9]  headroom: below it, a team over its share is refused
-- ARGV[10] most teams tracked (the least recently seen go first)
-- Returns {allowed (1/0), tokens left, seconds (the wait if allowed, else retry-after), refusal reason}
-- Stored numbers keep 17 significant digits (tostring keeps 14: it would round the epoch `ts` to 0.1 ms).
local function num(x) return string.format('%.17g', x) end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local ttl = ARGV[4]
local team = ARGV[5]

local function decayed(value, since)
  if value <= 0 or now <= since then return value end
  return value * math.pow(2, -(now - since) / tonumber(ARGV[7]))
end

local function touch()
  -- Even a refusal keeps the budget's keys alive: an idle budget expires, a busy one never does.
  redis.call('PEXPIRE', KEYS[1], ttl)
  if team ~= '' then
    redis.call('PEXPIRE', KEYS[2], ttl)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'blocked_until', 'up_remaining', 'up_reset',
  'share_total', 'share_at', 'active_weight')
local tokens = tonumber(state[1]) or capacity
local last = tonumber(state[2]) or now
local blocked_until = tonumber(state[3]) or 0
local up_remaining = tonumber(state[4])
local up_reset = tonumber(state[5])
local total = decayed(tonumber(state[6]) or 0, tonumber(state[7]) or now)
local active_weight = tonumber(state[8]) or 0

-- Braze said stop (a 429): nobody calls before its reset.
if now < blocked_until then
  touch()
  return {0, tostring(tokens), tostring(blocked_until - now), 'blocked'}
end
-- Braze said how much remains before its reset: never plan past it.
local braze_window = up_remaining ~= nil and up_reset ~= nil and now < up_reset
if braze_window and up_remaining < 1 then
  touch()
  return {0, tostring(tokens), tostring(up_reset - now), 'braze'}
end

tokens = math.min(capacity, tokens + math.max(0, now - last) * rate)

local usage, weight = 0, tonumber(ARGV[6])
local longest = max_wait
if team ~= '' then
  -- Teams that stopped asking leave the active weight.
  local function forget(gone)
    local entry = redis.call('HGET', KEYS[2], gone)
    if entry then
      local w = tonumber(string.match(entry, '^%S+ %S+ (%S+)$')) or 0
      active_weight = active_weight - w
      redis.call('HDEL', KEYS[2], gone)
    end
    redis.call('ZREM', KEYS[3], gone)
  end
  for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. num(now - tonumber(ARGV[8])))) do
    forget(gone)
  end
  local entry = redis.call('HGET', KEYS[2], team)
  if entry then
    local u, at, w = string.match(entry, '^(%S+) (%S+) (%S+)$')
    usage = decayed(tonumber(u), tonumber(at))
    active_weight = active_weight - tonumber(w) + weight
  else
    active_weight = active_weight + weight
    local excess = redis.call('ZCARD', KEYS[3]) + 1 - tonumber(ARGV[10])
    if excess > 0 then
      for _, gone in ipairs(redis.call('ZRANGE', KEYS[3], 0, excess - 1)) do forget(gone) end
    end
  end
  if active_weight < weight then active_weight = weight end  -- rounding never leaves this team a share over 1
  redis.call('ZADD', KEYS[3], num(now), team)
  redis.call('HSET', KEYS[2], team, num(usage) .. ' ' .. num(now) .. ' ' .. num(weight))
  redis.call('HSET', KEYS[1], 'active_weight', num(active_weight))
  local over = active_weight > 1e-9 and (usage + 1) / (total + 1) > weight / active_weight + 1e-9
  if over then
    if tokens < tonumber(ARGV[9]) + 1 then
      touch()
      local fair_rate = rate * weight / math.max(weight, active_weight)
      return {0, tostring(tokens), tostring(1 / fair_rate), 'share'}
    end
  elseif active_weight > weight then
    longest = max_wait * 2  -- under its share: other teams' reservations are ahead of it (UNDER_SHARE_WAIT)
  end
end

local after = tokens - 1
local wait = 0
if after < 0 then
  wait = -after / rate
end
if wait > longest then
  touch()
  return {0, tostring(tokens), tostring(wait - longest), 'tokens'}
end
redis.call('HSET', KEYS[1], 'tokens', num(after), 'ts', num(now))
if braze_window then
  redis.call('HSET', KEYS[1], 'up_remaining', num(up_remaining - 1))
end
if team ~= '' then
  redis.call('HSET', KEYS[2], team, num(usage + 1) .. ' ' .. num(now) .. ' ' .. num(weight))
  redis.call('HSET', KEYS[1], 'share_total', num(total + 1), 'share_at', num(now))
end
touch()
return {1, tostring(after), tostring(wait), ''}
