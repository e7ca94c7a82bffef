-- Take a fill lock (a lease) if nobody holds it, atomically.
-- KEYS[1]  the fill's lock
-- KEYS[2]  the previous fill's marker: cleared with the take (its waiters have had it, and a waiter on this new
--          fill must not be handed how a fill that already ended ended)
-- ARGV[1]  the holder's token
-- ARGV[2]  the lease, milliseconds (the live holder extends it: lock_extend.lua)
-- Returns 1 if taken, 0 if another holds it.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
