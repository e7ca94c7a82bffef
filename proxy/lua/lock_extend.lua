-- Extend a fill lock's lease, if the caller still holds it.
-- KEYS[1]  the fill's lock
-- ARGV[1]  the holder's token
-- ARGV[2]  the new lease, milliseconds from now
-- Returns 1 if extended, 0 if the lock expired or another replica took it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
