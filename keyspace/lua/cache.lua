-- cache.lua: read or store one cached list answer (keyspace.cache) in one round trip.
--
-- KEYS[1]:    the pause key mf:pause (keys.pause_key, under the system's namespace): while it
--             exists nothing is read or stored ('paused', the key), so the API computes the
--             answer (and refuses it) as it would without a cache.
-- KEYS[2]:    the prefix of the endpoint's cached answers, 'api:cache:<endpoint>:'
--             (Names.cache_prefix): the entry is KEYS[2] .. ARGV[2] .. '@' .. v1,v2,...
--             (Names.cache_key), completed here from the versions read.
-- KEYS[3]:    the endpoint's entry index (Names.cache_entries_key): a sorted set of its
--             entry keys scored by their expiry time in ms.
-- KEYS[4..]:  the versions of the collections the answer is computed from
--             (Names.collection_version_key): commit.lua INCRs one in every plan that writes
--             or deletes a document of its collection.
-- ARGV[1]:    'get' or 'put'.
-- ARGV[2]:    the hash of the request's parameters.
-- get: ARGV[3] a random integer an absent version starts at (SET NX), so versions never
--      start again from 1 after a restore or reset deleted them, and an entry computed
--      before cannot be met again by chance.
--      Returns {'ok', entry or false, v1, v2, ...}: the versions as read and the entry
--      stored under them, if any.
-- put: ARGV[3] the TTL in ms, ARGV[4] the answer, ARGV[5] the most entries the endpoint
--      keeps, ARGV[6..] the versions it was computed at (as get returned them). Stored only
--      while every version still holds that value (a later write makes it unreachable
--      anyway; this keeps dead entries out of memory). The entry joins the endpoint's index;
--      past the bound, the entries soonest to expire are deleted, so however many parameter
--      variations clients ask for, one endpoint holds at most that many answers.
--      Returns {'ok', 1 or 0}.

if redis.call('EXISTS', KEYS[1]) == 1 then return {'paused', KEYS[1]} end

local versions = {}
if ARGV[1] == 'get' then
  for n = 4, #KEYS do
    local v = redis.call('GET', KEYS[n])
    if not v then
      redis.call('SET', KEYS[n], ARGV[3], 'NX')
      v = redis.call('GET', KEYS[n])
    end
    versions[#versions + 1] = v
  end
  local entry = redis.call('GET', KEYS[2] .. ARGV[2] .. '@' .. table.concat(versions, ','))
  local out = {'ok', entry}
  for _, v in ipairs(versions) do out[#out + 1] = v end
  return out
end

for n = 4, #KEYS do
  if redis.call('GET', KEYS[n]) ~= ARGV[n + 2] then return {'ok', 0} end
  versions[#versions + 1] = ARGV[n + 2]
end
local entry = KEYS[2] .. ARGV[2] .. '@' .. table.concat(versions, ',')
local ttl = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('SET', entry, ARGV[4], 'PX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)  -- expired: gone already
redis.call('ZADD', KEYS[3], now + ttl, entry)
local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[5])
if over > 0 then
  local evicted = redis.call('ZPOPMIN', KEYS[3], over)
  for i = 1, #evicted, 2 do redis.call('DEL', evicted[i]) end
end
local latest = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[3], latest[2])  -- the index lives as long as its last entry
return {'ok', 1}
