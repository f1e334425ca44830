-- authorize.lua: authenticate a token, apply maintenance mode and its rate limit, in one trip.
--
-- KEYS[1]: the token hash          mf:token:<sha256>   (fields user_id, role, kind)
-- KEYS[2]: the token's GCRA state  mf:rate:<sha256>:<class>
-- KEYS[3]: config:system           (read: system.maintenance)
-- KEYS[4]: optional document key   (read only when the request is allowed: a GET by id
--                                   is then one round trip)
-- ARGV[1]: 'read' or 'write' (the route class)
-- ARGV[2]: period in milliseconds
-- ARGV[3..8]: requests per period for admin/designer/engineer x read/write,
--             in the order admin_read admin_write designer_read designer_write
--             engineer_read engineer_write; 0 means unlimited.
-- Returns: {status, user_id, role, limit, remaining, reset_ms, retry_after_ms[, document]}
--   document: JSON.GET KEYS[4] when given and status is 'ok' (false when missing).
--   status 'unknown' (no such token), 'maintenance' (a non-admin write while
--   config:system.maintenance is true; nothing counted), 'limited' or 'ok'.
-- GCRA keeps one number per token and class, the theoretical arrival time, and
-- uses the server clock, so every API process sharing this Redis agrees.

local token = redis.call('HMGET', KEYS[1], 'user_id', 'role')
local user_id, role = token[1], token[2]
if not user_id or not role then return {'unknown', '', '', 0, 0, 0, 0} end

local class = ARGV[1]
if class == 'write' and role ~= 'admin' then
  local flag = redis.call('JSON.GET', KEYS[3], '$.system.maintenance')
  if flag == '[true]' then return {'maintenance', user_id, role, 0, 0, 0, 0} end
end

local slots = {admin = 3, designer = 5, engineer = 7}
local slot = (slots[role] or 5) + (class == 'write' and 1 or 0)
local limit = tonumber(ARGV[slot])
local function allowed(reply)
  if KEYS[4] then
    -- pcall: a key of another type is left to the caller's own read, which reports it.
    local doc = redis.pcall('JSON.GET', KEYS[4], '.')
    if type(doc) ~= 'table' then reply[8] = doc end
  end
  return reply
end
if limit <= 0 then return allowed({'ok', user_id, role, 0, 0, 0, 0}) end

local period = tonumber(ARGV[2])
local interval = period / limit
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > period then
  local retry = math.ceil(new_tat - period - now)
  return {'limited', user_id, role, limit, 0, math.ceil(tat - now), retry}
end
redis.call('SET', KEYS[2], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
local remaining = math.floor((period - (new_tat - now)) / interval)
return allowed({'ok', user_id, role, limit, remaining, math.ceil(new_tat - now), 0})
