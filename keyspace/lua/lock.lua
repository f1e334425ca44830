-- lock.lua: acquire, refresh, release or read one document's lock, with a fencing token.
--
-- KEYS[1]: the pause key mf:pause (keys.pause_key, under the system's namespace): while it
--          exists nothing is read or written ('paused', the key).
-- KEYS[2]: the lock, e.g. doc:lock:<id> (Names.lock_key_of): a string holding the JSON
--          {"user_id", "locked_at", "operation", "fencing_token"}, expiring with the lock.
-- KEYS[3]: the document's fencing counter mf:fence:doc:lock:<id> (Names.fence_key): INCR on
--          every acquire and never expiring, so every lock's token is larger than all before.
-- KEYS[4]: the document (acquire only): no lock is taken on a document that does not exist.
-- ARGV[1]: 'acquire', 'refresh', 'release' or 'read'.
-- ARGV[2]: the lock's time to live in milliseconds (acquire and refresh).
-- ARGV[3]: the caller's user id (refresh, release).
-- ARGV[4]: '1' when the caller is an admin, who may refresh and release anyone's lock.
-- ARGV[5]: '' or a fencing token the lock must carry (refresh, release).
-- ARGV[6], ARGV[7] (acquire): the new lock's JSON is ARGV[6] .. token .. ARGV[7].
-- Returns {status, lock JSON or false, the lock's PTTL in ms (-1: no expiry) or 0}:
--   'ok'          acquire: the lock taken; refresh: the lock with its new TTL; release: the
--                 lock as it was before it was deleted; read: the lock
--   'paused'      KEYS[1] exists (the second field is the key)
--   'not_found'   acquire: the document does not exist
--   'locked'      acquire: the document is locked (by anyone, the caller included)
--   'no_lock'     refresh, release, read: the document is not locked (never was, released,
--                 or expired)
--   'not_holder'  refresh, release: another user holds the lock and the caller is no admin
--   'stale_token' refresh, release: the lock's fencing token is not ARGV[5]
-- Only 'ok' from acquire, refresh and release writes anything.

if redis.call('EXISTS', KEYS[1]) == 1 then return {'paused', KEYS[1], 0} end

local op = ARGV[1]
local raw = redis.call('GET', KEYS[2])

if op == 'acquire' then
  if redis.call('EXISTS', KEYS[4]) == 0 then return {'not_found', false, 0} end
  if raw then return {'locked', raw, redis.call('PTTL', KEYS[2])} end
  local token = redis.call('INCR', KEYS[3])
  local value = ARGV[6] .. string.format('%d', token) .. ARGV[7]
  redis.call('SET', KEYS[2], value, 'PX', ARGV[2])
  return {'ok', value, tonumber(ARGV[2])}
end

if not raw then return {'no_lock', false, 0} end
local pttl = redis.call('PTTL', KEYS[2])
if op == 'read' then return {'ok', raw, pttl} end

-- A value that is not the lock's JSON (written by hand) is held by nobody a user can be:
-- only an admin may end it.
local ok, lock = pcall(cjson.decode, raw)
if not ok or type(lock) ~= 'table' then lock = {} end
if ARGV[4] ~= '1' and lock.user_id ~= ARGV[3] then return {'not_holder', raw, pttl} end
if ARGV[5] ~= '' and lock.fencing_token ~= tonumber(ARGV[5]) then
  return {'stale_token', raw, pttl}
end
if op == 'refresh' then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return {'ok', raw, tonumber(ARGV[2])}
end
if op == 'release' then
  redis.call('DEL', KEYS[2])
  return {'ok', raw, pttl}
end
return redis.error_reply('ERR lock.lua: unknown op ' .. tostring(op))
