-- profile.lua: read or store one cached profile (keyspace.profiles) in one round trip.
--
-- KEYS[1]: the pause key mf:pause (keys.pause_key, under the system's namespace): while it
--          exists nothing is read or stored ('paused', the key), so the API answers 503
--          as every other request does.
-- KEYS[2]: the profile entry, e.g. user:profile:<user_id> (Names.profile_key): a string
--          holding the profile's JSON, expiring. commit.lua deletes it in every plan that
--          writes the document or one of its companions.
-- ARGV[1]: 'get' or 'put'.
-- get: returns {'ok', entry or false}.
-- put: stores ARGV[3] under KEYS[2] for ARGV[2] ms, only while every source still holds
--      what the profile was computed from, so an answer computed before a write that
--      deleted the entry is never stored after it:
--        KEYS[3] the document, ARGV[4] its JSON as read (JSON.GET KEYS[3] .);
--        with a companion, KEYS[4] the reference set listing the document's companions,
--        ARGV[5] how many members it had, ARGV[6..] those members; then, when one was read,
--        KEYS[5] that companion and ARGV[6 + count] its JSON as read.
--      Returns {'ok', 1 when stored, else 0}.

if redis.call('EXISTS', KEYS[1]) == 1 then return {'paused', KEYS[1]} end

if ARGV[1] == 'get' then
  return {'ok', redis.call('GET', KEYS[2])}
end

-- pcall: a key of another type is simply not what was read.
local function same_json(key, raw)
  return redis.pcall('JSON.GET', key, '.') == raw
end

if not same_json(KEYS[3], ARGV[4]) then return {'ok', 0} end
if KEYS[4] then
  local count = tonumber(ARGV[5])
  if redis.call('SCARD', KEYS[4]) ~= count then return {'ok', 0} end
  for n = 1, count do
    if redis.call('SISMEMBER', KEYS[4], ARGV[5 + n]) == 0 then return {'ok', 0} end
  end
  if KEYS[5] and not same_json(KEYS[5], ARGV[6 + count]) then return {'ok', 0} end
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return {'ok', 1}
