-- Release a fill lock, if the caller still holds it (a lock that expired and was taken by another stays).
-- KEYS[1]  the fill's lock
-- ARGV[1]  the holder's token
-- Returns 1 if released, 0 otherwise.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
