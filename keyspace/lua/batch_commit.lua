-- batch_commit.lua: many commit.lua plans in one call, all applied or none (a batch create).
--
-- keyspace/lua_sources.py composes this as the tail of one script that first defines
-- commit(KEYS, ARGV) from commit.lua unchanged, so each plan makes exactly the checks and
-- writes commit.lua makes alone, and split_plans(KEYS, ARGV) from plans.lua. First every plan runs as a dry run (its ARGV[2] = '-1':
-- every check and type check, nothing written, no id drawn) and every refusal is collected;
-- only when none was refused is each plan applied, in order.
--
-- KEYS:           the plans' KEYS, one plan after another (each starts with the pause key)
-- ARGV[1]:        n, the number of plans
-- ARGV[2..2n+1]:  for each plan in turn, its number of KEYS and its number of ARGV
-- ARGV[2n+2..]:   the plans' ARGV (commit.lua's), one plan after another; each plan's
--                 ARGV[2] names the document it returns once applied
-- Optionally, an Idempotency-Key claim (keyspace.idempotency): one more KEY after the plans'
-- (the claim key) and, after the plans' ARGV, its held value, the outcome's head, its TTL in
-- ms, then for each plan the 1-based position of its document in the answer. The claim must
-- still hold the held value before anything is written ('lost' otherwise); once every plan
-- was applied, the key is SET to head .. the documents in answer order, one per line, PX ms
-- (compact JSON holds no raw newline).
-- The caller (keyspace.batch) sends no two plans writing the same document or claiming
-- the same unique value, and plans with an explicit id before those drawing one from a
-- counter, so no plan can be refused once every dry run passed: an earlier plan of the
-- batch changes nothing a later one checks.
-- Returns: {'ok', doc1, doc2, ...}: every plan applied, each one's document in order;
--          {'lost'}: the claim is no longer this request's; nothing written;
--          {'err', p1, code1, field1, value1, p2, ...}: nothing written; for each refused
--          plan its position (1-based) and commit.lua's error (code, field, value). A plan
--          refused as 'paused' ends the dry run: every later one would meet the pause too;
--          {'broken', p, code, field, value}: plan p was refused while applying, after the
--          plans before it were written: a generated id meeting 65,600 taken ids in a row
--          (ids an import took), or taken ids up to the end of the counter's range, which the
--          dry run cannot see: it draws no id. A counter without
--          room for every id the batch draws from it is refused before any write
--          ('counter_exhausted', as commit.lua names it).

local plans, key_at, arg_at = split_plans(KEYS, ARGV)
local n = #plans

local claim = KEYS[key_at + 1]
if claim and redis.pcall('GET', claim) ~= ARGV[arg_at + 1] then return {'lost'} end

local refused = {'err'}
local floors = {}  -- counter key -> the highest value a plan's floor op raises it to
for p = 1, n do
  local plan_keys, plan_args = plans[p][1], plans[p][2]
  local returning = plan_args[2]
  plan_args[2] = '-1'
  local reply = commit(plan_keys, plan_args)
  plan_args[2] = returning
  if reply[1] == 'ok' then
    for i = 3, #reply, 2 do
      floors[reply[i]] = math.max(floors[reply[i]] or 0, tonumber(reply[i + 1]))
    end
  else
    refused[#refused + 1] = p
    refused[#refused + 1] = reply[2]
    refused[#refused + 1] = reply[3]
    refused[#refused + 1] = reply[4]
    if reply[2] == 'paused' or reply[2] == 'bad_plan' then break end
  end
end
if #refused > 1 then return refused end

-- keys.MAX_COUNTER, as in commit.lua: every id the batch draws must fit below it.
local MAX_COUNTER = 9007199254740991
local draws = {}
for p = 1, n do
  local counter = tonumber(plans[p][2][3])
  if counter > 0 then
    local key = plans[p][1][counter]
    draws[key] = (draws[key] or 0) + 1
    -- The dry run found the counter an integer (or missing); explicit ids, applied first,
    -- may raise it before the draws.
    local at = math.max(tonumber(redis.call('GET', key) or '0'), floors[key] or 0)
    if at + draws[key] > MAX_COUNTER then
      return {'err', p, 'counter_exhausted', '', key}
    end
  end
end

-- A generated id meeting 64 taken ids in a row (ids an import took above the counter) is
-- refused 'contention' by commit.lua, nothing written but the INCRs past those ids: the plan
-- is applied again, drawing from there, so such a run never leaves the batch half written.
-- The bound (64 x 1,025 = 65,600 taken ids in a row) only keeps a corrupt keyspace from
-- holding the server.
local MAX_REDRAWS = 1024
local out = {'ok'}
for p = 1, n do
  local reply = commit(plans[p][1], plans[p][2])
  local redraws = 0
  while reply[1] ~= 'ok' and reply[2] == 'contention' and redraws < MAX_REDRAWS do
    reply = commit(plans[p][1], plans[p][2])
    redraws = redraws + 1
  end
  if reply[1] ~= 'ok' then return {'broken', p, reply[2], reply[3], reply[4]} end
  out[#out + 1] = reply[2]
end
if claim then
  local answer = {}
  for p = 1, n do answer[tonumber(ARGV[arg_at + 3 + p])] = out[p + 1] end
  redis.call('SET', claim, ARGV[arg_at + 2] .. table.concat(answer, '\n'), 'PX', ARGV[arg_at + 3])
end
return out
