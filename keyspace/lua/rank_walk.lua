-- rank_walk.lua: the next candidates of a page read from a ranking (keyspace.ranking), from
-- one state of the sorted set. It reads only (a script without flags that writes nothing
-- runs on a read-only replica too, as scripts did before flags existed).
--
-- KEYS[1]: the ranking, a sorted set (keys.rank_key): member a document id, score its value.
-- ARGV[1]: 'desc' (highest scores first, ties by id bytewise descending, as ZREVRANGE
--          orders them) or 'asc' (ZRANGE's order).
-- ARGV[2]: the first score of the walk, inclusive: members before it are skipped ('+inf'
--          descending, '-inf' ascending for none).
-- ARGV[3]: the last score of the walk, inclusive: the walk ends past it.
-- ARGV[4], ARGV[5]: a score and an id the walk continues strictly after ('' for none): the
--          previous chunk's last member, or the page's cursor. The position is found from
--          the pair itself, not from a rank read before, so members written, moved or deleted
--          since then shift nothing: a member with an unchanged score and id is met once.
-- ARGV[6]: how many members at most.
-- Returns: {ended, id1, score1, id2, score2, ...} in the walk's order, scores as strings;
--          ended is 1 when the walk reached its last score or the set's end.

-- A score as ZCOUNT takes it ('+inf', '-inf' or a number), as a Lua number.
local function number(s)
  if s == '+inf' or s == 'inf' then return math.huge end
  if s == '-inf' then return -math.huge end
  return tonumber(s)
end

local key, desc = KEYS[1], ARGV[1] == 'desc'
local first, last = ARGV[2], number(ARGV[3])
local count = tonumber(ARGV[6])

-- Bytewise a < b: Lua's own comparison follows the server's locale.
local function below(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Members before score s in the walk's order (with s's own when inclusive).
local function before(s, inclusive)
  local bound = inclusive and s or '(' .. s
  if desc then return redis.call('ZCOUNT', key, bound, '+inf') end
  return redis.call('ZCOUNT', key, '-inf', bound)
end

local function member_at(rank)
  local found
  if desc then
    found = redis.call('ZREVRANGE', key, rank, rank)
  else
    found = redis.call('ZRANGE', key, rank, rank)
  end
  return found[1]
end

-- The rank right after (s, id) in the walk's order: past every member of a score before s,
-- and past the members tied at s whose ids come before id (a binary search of the tie).
local function after(s, id)
  local lo, hi = before(s, false), before(s, true)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = member_at(mid)
    local passed = m == id or (desc and below(id, m)) or (not desc and below(m, id))
    if passed then lo = mid + 1 else hi = mid end
  end
  return lo
end

local start = before(first, false)
if ARGV[4] ~= '' then start = math.max(start, after(ARGV[4], ARGV[5])) end

local range
if desc then
  range = redis.call('ZREVRANGE', key, start, start + count - 1, 'WITHSCORES')
else
  range = redis.call('ZRANGE', key, start, start + count - 1, 'WITHSCORES')
end
local out = {0}
for i = 1, #range, 2 do
  local score = number(range[i + 1])
  if (desc and score < last) or (not desc and score > last) then
    out[1] = 1
    return out
  end
  out[#out + 1] = range[i]
  out[#out + 1] = range[i + 1]
end
if #range < 2 * count then out[1] = 1 end
return out
