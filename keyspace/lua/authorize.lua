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
--                                   is then one round trip); KEYS[7] when ARGV[14] is given
-- KEYS[5], KEYS[6] when ARGV[14] is given: the per-endpoint count rate_limit:<user>:<endpoint>
--          and its window's JSON rate_limit:window:<user>:<endpoint> ({"requests",
--          "window_start" (server ms), "limit"}), both expiring with the window
-- ARGV[1]: 'read', 'write' or 'mint' (the route class)
-- ARGV[2]: the user id KEYS[2] belongs to: the token's owner as the client last knew it
-- ARGV[3]: '' to authenticate by KEYS[1]; else the role of a token the service recognised
--          itself (the operator's token, which is never stored): the caller is ARGV[2]
-- ARGV[4]: period in milliseconds
-- ARGV[5..13]: requests per period for admin/designer/engineer x read/write/mint, in the
--              order admin_read admin_write admin_mint designer_read designer_write
--              designer_mint engineer_read engineer_write engineer_mint; 0 means unlimited.
-- ARGV[14], ARGV[15]: optional: requests per window of this endpoint (> 0) and the window in
--              milliseconds; a fixed window per user and endpoint that admins skip. Present
--              exactly when #ARGV >= 15 (authorized_commit.lua relies on that).
-- Returns: {status, user_id, role, limit, remaining, reset_ms, retry_after_ms[, document]}
--   document: JSON.GET of the document key when given and status is 'ok' (false when missing).
--   status 'paused' (KEYS[4] exists: nothing read or counted); 'unknown' (no such token); 'moved' (the token belongs to user_id, not to ARGV[2]:
--   nothing counted, ask again with that user's KEYS[2]); 'maintenance' (a non-admin write
--   or mint while config:system.maintenance is true; nothing counted); 'limited' or 'ok'.
-- GCRA keeps one number per user and class, the theoretical arrival time, and uses the
-- server clock, so every API process sharing this Redis agrees, and every token of a user
-- draws on the same budget. With both limits, a request must pass both and a refused one
-- counts against neither; limit/remaining/reset are those of the tighter one (the refusing
-- one, the longer wait when both refuse, else the one with fewer requests remaining).

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
local per_endpoint = #ARGV >= 15
local doc_key = KEYS[per_endpoint and 7 or 5]
local function allowed(reply)
  if doc_key then
    -- pcall: a key of another type is left to the caller's own read, which reports it.
    local doc = redis.pcall('JSON.GET', doc_key, '.')
    if type(doc) ~= 'table' then reply[8] = doc end
  end
  return reply
end
local ep_limit = per_endpoint and role ~= 'admin' and tonumber(ARGV[14]) or 0
if limit <= 0 and ep_limit <= 0 then return allowed({'ok', user_id, role, 0, 0, 0, 0}) end

local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)

-- Each limit is first only decided; its state is written once both allow the request.
local gcra, refused
if limit > 0 then
  local period = tonumber(ARGV[4])
  local interval = period / limit
  -- The state is the service's own: a value it cannot read (another type, not a number) is
  -- treated as an empty bucket and overwritten below, rather than failing every request.
  local stored = redis.pcall('GET', KEYS[2])
  local tat = (type(stored) == 'string' and tonumber(stored)) or 0
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - now > period then
    local retry = math.ceil(new_tat - period - now)
    refused = {'limited', user_id, role, limit, 0, math.ceil(tat - now), retry}
  end
  gcra = {limit, math.floor((period - (new_tat - now)) / interval), math.ceil(new_tat - now), new_tat}
end

local window
if ep_limit > 0 then
  local span = tonumber(ARGV[15])
  -- The same leniency: an unreadable count (or one without its expiry) starts a new window.
  local stored = redis.pcall('GET', KEYS[5])
  local count = type(stored) == 'string' and tonumber(stored)
  local ttl = count and redis.call('PTTL', KEYS[5]) or -1
  if ttl <= 0 then count, ttl = 0, span end
  if count >= ep_limit and not (refused and refused[7] >= ttl) then
    refused = {'limited', user_id, role, ep_limit, 0, ttl, ttl}
  end
  window = {ep_limit, ep_limit - count - 1, ttl, count + 1, now + ttl - span}
end
if refused then return refused end

if gcra then
  redis.call('SET', KEYS[2], tostring(gcra[4]), 'PX', gcra[3] + 1)
end
if window then
  local ttl = window[3]
  redis.call('SET', KEYS[5], tostring(window[4]), 'PX', ttl)
  local state = {requests = window[4], window_start = window[5], limit = window[1]}
  redis.call('SET', KEYS[6], cjson.encode(state), 'PX', ttl)
end
local tight = gcra
if window and (not gcra or window[2] < gcra[2]) then tight = window end
return allowed({'ok', user_id, role, tight[1], tight[2], tight[3], 0})
