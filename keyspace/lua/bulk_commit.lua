-- bulk_commit.lua: many commit.lua plans in one call, each applied on its own (bulk loading).
--
-- keyspace/lua_sources.py composes this as the tail of one script that first defines
-- commit(KEYS, ARGV) from commit.lua unchanged, so each plan makes exactly the checks and
-- writes commit.lua makes, while a batch costs the server one script call instead of one per
-- document, and the client one reply to read (docs/profiling.md, "Round 2: generate"); and
-- split_plans(KEYS, ARGV) from plans.lua, which reads the layout below.
--
-- ARGV[1]:        n, the number of plans
-- ARGV[2..2n+1]:  for each plan in turn, its number of KEYS and its number of ARGV
-- KEYS:           the plans' KEYS, one plan after another
-- ARGV[2n+2..]:   the plans' ARGV (commit.lua's), one plan after another
-- KEYS after the plans' (none when no plan has a change-feed event): the pause key, then
--                 each change feed the plans append to; ARGV after the plans': the feeds'
--                 cap, maxlen and age in ms (commit.lua's trim op), then for each plan in
--                 turn the position of its feed among those KEYS (1 for the first feed), 0
--                 for a plan appending to none. The plans carry no trim of their own: once
--                 every plan ran, one commit.lua plan of a single trim op caps each feed that
--                 an applied plan appended to. The script is atomic, so nobody sees the feed
--                 between the plans, and the cap holds after the call whichever plans were
--                 refused (docs/changes.md); a trim a plan costs ~5 us of server. A feed no
--                 applied plan appended to is left alone, as by a lone commit: trimmed after
--                 a quiet spell without a new event, it could be emptied, and an empty
--                 stream has no entry for the trim to record the newest removed id on
--                 (review 29: a consumer then resumed past trimmed events without a 410).
-- Each plan runs as commit.lua runs it alone, except that it returns no document (its
-- ARGV[2] is taken as 0): a refused plan writes nothing and the next one still runs.
-- Returns: {applied, p1, code1, field1, value1, p2, ...}: how many plans were applied, then
--          for each refused plan its position (1-based) and commit.lua's error (code, field,
--          value). A plan refused as 'paused' ends the batch: no later plan ran (the pause
--          key cannot appear while this script runs, so every one of them would meet it).

local plans, key_at, arg_at = split_plans(KEYS, ARGV)
local out = {0}
local appended = {}  -- position of a feed among the trailing KEYS -> an applied plan's event
for p = 1, #plans do
  local plan_keys, plan_args = plans[p][1], plans[p][2]
  plan_args[2] = '0'
  local reply = commit(plan_keys, plan_args)
  if reply[1] == 'ok' then
    out[1] = out[1] + 1
    local feed = tonumber(ARGV[arg_at + 2 + p] or '0')
    if feed and feed > 0 then appended[feed] = true end
  else
    out[#out + 1] = p
    out[#out + 1] = reply[2]
    out[#out + 1] = reply[3]
    out[#out + 1] = reply[4]
    if reply[2] == 'paused' then break end
  end
end
for feed = 1, #KEYS - key_at - 1 do
  -- A trim alone cannot be refused here: the pause was absent for the applied plan, whose
  -- event this stream holds, so it is a stream and the trim leaves that event in it.
  if appended[feed] then
    commit({KEYS[key_at + 1], KEYS[key_at + 1 + feed]},
           {'0', '0', '0', '', '0', '', 'trim', '2', ARGV[arg_at + 1], ARGV[arg_at + 2]})
  end
end
return out
