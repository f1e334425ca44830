-- authorize.lua: authenticate a token, apply maintenance mode and its user's rate limit, in one trip.
--
-- KEYS[1]: the token hash          mf:token:<sha256>   (fields user_id, role, kind); not read
--                                   when ARGV[3] names the role (the operator's token)
-- KEYS[2]: the user's GCRA state   mf:rate:<user_id>:<class>, user_id = ARGV[2]
-- KEYS[3]: config:system           (read: system.maintenance)
-- KEYS[4]: the pause key            mf:pause: while it exists every request is refused,
--                                   before the token is read (the keyspace may be half
--                                   rewritten), the operator's token included
-- KEYS[5]: optional document key   (read only when the request is allowed: a GET by id
--                                   is then one round trip)
-- ARGV[1]: 'read', 'write' or 'mint' (the route class)
-- ARGV[2]: the user id KEYS[2] belongs to: the token's owner as the client last knew it
-- ARGV[3]: '' to authenticate by KEYS[1]; else the role of a token the service recognised
--          itself (the operator's token, which is never stored): the caller is ARGV[2]
-- ARGV[4]: period in milliseconds
-- ARGV[5..13]: requests per period for admin/designer/engineer x read/write/mint, in the
--              order admin_read admin_write admin_mint designer_read designer_write
--              designer_mint engineer_read engineer_write engineer_mint; 0 means unlimited.
-- Returns: {status, user_id, role, limit, remaining, reset_ms, retry_after_ms[, document]}
--   document: JSON.GET KEYS[5] when given and status is 'ok' (false when missing).
--   status 'paused' (KEYS[4] exists: nothing read or counted); 'unknown' (no such token); 'moved' (the token belongs to user_id, not to ARGV[2]:
--   nothing counted, ask again with that user's KEYS[2]); 'maintenance' (a non-admin write
--   or mint while config:system.maintenance is true; nothing counted); 'limited' or 'ok'.
-- GCRA keeps one number per user and class, the theoretical arrival time, and uses the
-- server clock, so every API process sharing this Redis agrees, and every token of a user
-- draws on the same budget.

if redis.call('EXISTS', KEYS[4]) == 1 then return {'paused', '', '', 0, 0, 0, 0} end

local user_id, role = ARGV[2], ARGV[3]
if role == '' then
  local token = redis.call('HMGET', KEYS[1], 'user_id', 'role')
  if not token[1] or not token[2] then return {'unknown', '', '', 0, 0, 0, 0} end
  if token[1] ~= user_id then return {'moved', token[1], token[2], 0, 0, 0, 0} end
  role = token[2]
end

local class = ARGV[1]
if class ~= 'read' and role ~= 'admin' then
  local flag = redis.call('JSON.GET', KEYS[3], '$.system.maintenance')
  if flag == '[true]' then return {'maintenance', user_id, role, 0, 0, 0, 0} end
end

local slots = {admin = 5, designer = 8, engineer = 11}
local offsets = {read = 0, write = 1, mint = 2}
local slot = (slots[role] or 8) + (offsets[class] or 1)
local limit = tonumber(ARGV[slot])
local function allowed(reply)
  if KEYS[5] then
    -- pcall: a key of another type is left to the caller's own read, which reports it.
    local doc = redis.pcall('JSON.GET', KEYS[5], '.')
    if type(doc) ~= 'table' then reply[8] = doc end
  end
  return reply
end
if limit <= 0 then return allowed({'ok', user_id, role, 0, 0, 0, 0}) end

local period = tonumber(ARGV[4])
local interval = period / limit
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
-- The state is the service's own: a value it cannot read (another type, not a number) is
-- treated as an empty bucket and overwritten below, rather than failing every request.
local stored = redis.pcall('GET', KEYS[2])
local tat = (type(stored) == 'string' and tonumber(stored)) or 0
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > period then
  local retry = math.ceil(new_tat - period - now)
  return {'limited', user_id, role, limit, 0, math.ceil(tat - now), retry}
end
redis.call('SET', KEYS[2], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
local remaining = math.floor((period - (new_tat - now)) / interval)
return allowed({'ok', user_id, role, limit, remaining, math.ceil(new_tat - now), 0})
