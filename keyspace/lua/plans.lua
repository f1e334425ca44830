-- plans.lua: split_plans(KEYS, ARGV), the commit.lua plans a script call carries.
--
-- keyspace/lua_sources.py puts this before bulk_commit.lua and batch_commit.lua, which take
-- many plans in one call laid out alike, so that layout is read in one place. It is no
-- script of its own: it defines a function and runs nothing.
--
-- KEYS:           the plans' KEYS, one plan after another (what follows is the caller's)
-- ARGV[1]:        n, the number of plans
-- ARGV[2..2n+1]:  for each plan in turn, its number of KEYS and its number of ARGV
-- ARGV[2n+2..]:   the plans' ARGV (commit.lua's), one plan after another (what follows is
--                 the caller's)
-- Returns: plans, key_at, arg_at: the n plans in order, each {plan_keys, plan_args} (new
--          tables, the caller may change them), then how many KEYS and up to which ARGV the
--          plans took, so what follows them is KEYS[key_at + 1] and ARGV[arg_at + 1].

local function split_plans(keys, argv)
  local n = tonumber(argv[1])
  local plans = {}
  local key_at, arg_at = 0, 2 * n + 1
  for p = 1, n do
    local n_keys, n_args = tonumber(argv[2 * p]), tonumber(argv[2 * p + 1])
    local plan_keys, plan_args = {}, {}
    for i = 1, n_keys do plan_keys[i] = keys[key_at + i] end
    for i = 1, n_args do plan_args[i] = argv[arg_at + i] end
    key_at, arg_at = key_at + n_keys, arg_at + n_args
    plans[p] = {plan_keys, plan_args}
  end
  return plans, key_at, arg_at
end
