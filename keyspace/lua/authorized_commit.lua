-- authorized_commit.lua: authorize.lua, then commit.lua if the caller may write, in one trip.
--
-- keyspace/scripts.py loads this as the tail of one script that first defines
-- authorize(KEYS, ARGV) and commit(KEYS, ARGV) from the two files unchanged, so a
-- create over HTTP costs one round trip and each rule lives in one place.
--
-- KEYS[1..k]:   authorize.lua's KEYS (token hash, rate state, config:system, pause key,
--               and the per-endpoint count and window when its ARGV carry an endpoint
--               limit: k is 6 when n >= 15, else 4)
-- KEYS[k+1..]:  commit.lua's KEYS (the pause key again first)
-- ARGV[1]:      n, the number of authorize.lua's ARGV that follow
-- ARGV[2..n+1]: authorize.lua's ARGV
-- ARGV[n+2]:    the one non-admin user id allowed to write this plan ('' for admins only)
-- ARGV[n+3]:    the import window of non-admins: for them it replaces commit.lua's ARGV[6],
--               so an explicit id may raise a counter at most this far past its value
-- ARGV[n+4..]:  commit.lua's ARGV
-- Returns: {authorize.lua's reply, commit.lua's reply or false}
--   The plan runs only when authorization answered 'ok'; when the caller is neither an
--   admin nor ARGV[n+2], it does not run and the second element is
--   {'err', 'forbidden', '', ''}.

local function slice(list, first, last)
  local out = {}
  for i = first, last do out[#out + 1] = list[i] end
  return out
end

local n = tonumber(ARGV[1])
local k = n >= 15 and 6 or 4
local decision = authorize(slice(KEYS, 1, k), slice(ARGV, 2, n + 1))
if decision[1] ~= 'ok' then return {decision, false} end
local allowed = ARGV[n + 2]
local admin = decision[3] == 'admin'
if not admin and (allowed == '' or decision[2] ~= allowed) then
  return {decision, {'err', 'forbidden', '', ''}}
end
local plan = slice(ARGV, n + 4, #ARGV)
if not admin then plan[6] = ARGV[n + 3] end
return {decision, commit(slice(KEYS, k + 1, #KEYS), plan)}
