-- commit.lua: apply one write plan atomically, all or nothing.
--
-- KEYS[1]: the pause key mf:pause (keys.pause_key; keyspace.plan.Plan puts it first):
--         while it exists the plan is refused ('paused', value the key), nothing written.
--         A plan whose KEYS[1] is another key is malformed ('bad_plan').
-- KEYS:   every key the plan reads or writes (documents, unique claims, reference
--         sets, counters); ops refer to them by 1-based index.
--         With a generated id, KEYS[ARGV[5]] is the document key's prefix (e.g.
--         'driver:'): the one key not named in full, since its id is drawn here.
-- ARGV[1]: number of check ops that follow (they all run before any write).
-- ARGV[2]: index of the key whose document to return after the writes, 0 for none;
--          '-1' for a dry run (batch_commit.lua): every check and type check runs, and a
--          counter to draw from must hold an integer below MAX_COUNTER, but nothing is
--          written and no id is drawn; returns {'ok', false, key1, n1, ...} when the plan
--          would commit: each counter key a floor op of the plan would raise, and to what.
-- ARGV[3]: index of a counter key to draw the document's id from, 0 for none. After
--          every check passed the script INCRs it until ARGV[4]..n names no existing
--          document nor jsetat key (ids an import took are skipped), then appends that
--          id to KEYS[ARGV[5]] and uses it in the *id and jsetat ops. n is written as a
--          plain decimal and never passes MAX_COUNTER (2^53 - 1, keys.MAX_COUNTER): a
--          counter that can issue no further id answers 'counter_exhausted'.
-- ARGV[4]: prefix of generated ids (e.g. 'driver_'); ARGV[5]: see KEYS.
-- ARGV[6]: import window: '' for none, else the most a floor op may raise its counter
--          past the counter's current value ('import_window' otherwise, nothing written;
--          authorized_commit.lua sets it for non-admins).
-- ARGV[7..]: ops, each an op name followed by its arguments:
--   checks:  absent  k                 -> error 'already_exists' when KEYS[k] exists
--            equals  k raw             -> error 'not_found' / 'stale' unless JSON.GET KEYS[k] == raw
--            exists  k field value     -> error 'missing_reference' unless KEYS[k] is a JSON document
--            unfenced k field value    -> error 'missing_reference' when KEYS[k] exists
--                                         (the target's delete fence: it is being deleted)
--            free    k owner field     -> error 'unique_conflict' when KEYS[k] holds another owner
--            unclaimed k field         -> error 'unique_conflict' when KEYS[k] has any owner
--            card    k n field         -> error 'stale' unless SCARD KEYS[k] == n
--            gone    k s member        -> error 'stale' (field KEYS[s], value KEYS[k]) unless
--                                         KEYS[k] is absent and member is in the set KEYS[s]
--                                         (a referrer that expired, as a delete read it)
--            string  k raw             -> error 'stale' unless KEYS[k] is a string equal to raw
--                                         (a legacy MultiFrame 11.0 value being converted)
--            hequals k field value     -> error 'rekeyed' (value: what the field holds) unless
--                                         the hash KEYS[k] holds value in field (the keyring's
--                                         current key, for a write of sealed values)
--            claimed k raw             -> error 'idempotency_lost' unless KEYS[k] is a string
--                                         equal to raw (an Idempotency-Key's claim, still
--                                         this request's: keyspace.idempotency)
--   writes:  jset k json | del k | set k value | delif k value | sadd k member
--            srem k member | floor k n | incr k | hset k field value | hdel k field
--            bump k n (INCR, or SET n when KEYS[k] is absent: a cache version, keyspace.cache,
--                      that never counts from 1 again after a reset deleted it)
--            hsetx k field value (HSET only when the hash exists) | pexpire k ms
--            jsetid k head tail (JSON.SET head..id..tail) | setid k | saddid k
--            jsetat k head tail (JSON.SET KEYS[k]..id head..id..tail: KEYS[k] is a prefix
--                               such as 'mf:proj:user:', completed by the generated id)
--            keepttl k ms (PEXPIRE only when KEYS[k] has no TTL: a write that keeps the
--                          time an expiring document has left, JSON.SET keeping it)
--            ttlof k s (KEYS[k] expires when KEYS[s] does, PEXPIREAT PEXPIRETIME: the same
--                       millisecond; PERSIST when KEYS[s] has no TTL) | ttlat k s (the
--                       same for KEYS[k]..id, a key jsetat completed)
--            outcome k head ms (SET KEYS[k] head..document PX ms: the document is what
--                              ARGV[2] returns, '' for none; the outcome a retry with the
--                              same Idempotency-Key replays. Plans write it last)
--            event s k op collection doc_id (XADD KEYS[s] * one change-feed entry: op
--                  'create', 'update' or 'delete', the collection, the document id, rev the
--                  sha1 of JSON.GET KEYS[k] '.' as written, '' for a delete: the ETag a
--                  read answers, and at the server's TIME in ms; after the document's writes)
--            eventid s k op collection (the same for the generated id: KEYS[k] is completed)
--            trim s maxlen age_ms (XTRIM KEYS[s] MAXLEN ~ maxlen, then MINID TIME - age_ms:
--                  the feed's cap, in the commit that grows it; docs/changes.md)
--            zadd k score member | zaddid k score (member: the generated id) | zrem k member
--                  (a ranked field's sorted set, keyspace.ranks; score a decimal number)
--          SET clears a key's TTL, so an expiring document's claims get theirs by ttlof
--          after their set/setid; pexpire, keepttl and ttlof run on the document after its
--          jset, so a plan never leaves an expiring document's keys without their TTL.
-- Returns: {'ok', raw document of the return key or false}
--          or {'err', code, field, value} when a check fails or the keyspace is paused;
--          nothing is written then
--          ('import_window': field the counter key, value the highest n allowed).
-- Before any write, every written key is checked to hold what its op needs (see
-- needs_of below: 'wrong_type' with field = op, value = key otherwise), so no
-- write can fail half-way through a plan.

-- How many arguments each op takes (nil: no such op). Functions, not tables: a table
-- constructor runs on every call of the script, the three of them ~2 us (measured), and
-- these chains cost a few comparisons an op.
local function arity_of(op)
  if op == 'absent' or op == 'del' or op == 'incr' or op == 'setid' or op == 'saddid' then
    return 1
  elseif op == 'unclaimed' or op == 'equals' or op == 'string' or op == 'claimed'
      or op == 'jset' or op == 'set' or op == 'delif' or op == 'sadd' or op == 'srem'
      or op == 'floor' or op == 'bump' or op == 'hdel' or op == 'pexpire' or op == 'keepttl'
      or op == 'ttlof' or op == 'ttlat' or op == 'zaddid' or op == 'zrem' then
    return 2
  elseif op == 'jsetid' or op == 'jsetat' or op == 'free' or op == 'exists'
      or op == 'unfenced' or op == 'card' or op == 'hequals' or op == 'gone' or op == 'hset'
      or op == 'hsetx' or op == 'trim' or op == 'zadd' or op == 'outcome' then
    return 3
  elseif op == 'eventid' then
    return 4
  elseif op == 'event' then
    return 5
  end
  return nil
end

-- keys.pause_key(): held by a command rewriting the keyspace wholesale (restore, reset).
local PAUSE = 'mf:pause'  -- with the system's namespace, if any, before it

-- A copy, because the generated id completes one key after the checks.
-- (A loop: unpack takes at most ~8,000 values, and a plan may name more keys.)
local K = {}
for n = 1, #KEYS do K[n] = KEYS[n] end
local id = nil
-- keys.MAX_COUNTER: Lua numbers are doubles, exact up to here, so every id drawn is too.
local MAX_COUNTER = 9007199254740991

local function fail(code, field, value)
  return {'err', code, field or '', value or ''}
end

local function check(op, a)
  local key = K[a[1]]
  if op == 'absent' then
    if redis.call('EXISTS', key) == 1 then return fail('already_exists', '', key) end
  elseif op == 'equals' then
    local cur = redis.call('JSON.GET', key, '.')
    if not cur then return fail('not_found', '', key) end
    if cur ~= a[2] then return fail('stale', '', key) end
  elseif op == 'exists' then
    -- JSON.TYPE, not EXISTS: a key still holding a legacy string is no document to refer to.
    local reply = redis.pcall('JSON.TYPE', key, '$')
    if type(reply) ~= 'table' or reply.err or not reply[1] then
      return fail('missing_reference', a[2], a[3])
    end
  elseif op == 'unfenced' then
    if redis.call('EXISTS', key) == 1 then return fail('missing_reference', a[2], a[3]) end
  elseif op == 'free' then
    local owner = redis.call('GET', key)
    if owner and owner ~= a[2] then return fail('unique_conflict', a[3], owner) end
  elseif op == 'unclaimed' then
    local owner = redis.call('GET', key)
    if owner then return fail('unique_conflict', a[2], owner) end
  elseif op == 'string' then
    if redis.call('TYPE', key).ok ~= 'string' or redis.call('GET', key) ~= a[2] then
      return fail('stale', '', key)
    end
  elseif op == 'hequals' then
    local held = redis.pcall('HGET', key, a[2])
    if held ~= a[3] then
      return fail('rekeyed', a[2], type(held) == 'string' and held or '')
    end
  elseif op == 'claimed' then
    if redis.pcall('GET', key) ~= a[2] then return fail('idempotency_lost', '', key) end
  elseif op == 'card' then
    if redis.call('SCARD', key) ~= tonumber(a[2]) then return fail('stale', a[3], key) end
  elseif op == 'gone' then
    local set = K[tonumber(a[2])]
    if redis.call('EXISTS', key) == 1 or redis.pcall('SISMEMBER', set, a[3]) ~= 1 then
      return fail('stale', set, key)
    end
  end
  return nil
end

-- key expires in the same millisecond as src (PEXPIRETIME is absolute), or never with it.
local function expire_as(key, src)
  local at = redis.call('PEXPIRETIME', src)
  if at > 0 then redis.call('PEXPIREAT', key, at) else redis.call('PERSIST', key) end
end

-- The server's clock in ms (TIME: seconds, microseconds), for the feed's 'at' and its age cap;
-- read once a plan (the event and the trim agree on it).
local clock = nil
local function now_ms()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end

-- The document the event just read (its key and JSON.GET reply): what the plan returns and
-- its outcome records, read once. Every write op but these forgets it (write below), so it
-- is never a stale copy.
local read_key, read_raw = nil, nil

-- The document the plan returns (KEYS[ARGV[2]]) as it stands now.
local function returned(ret)
  if read_key == K[ret] then return read_raw end
  return redis.call('JSON.GET', K[ret], '.')
end

-- One change-feed entry; rev is the ETag of the document as this plan left it.
local function append_event(stream, key, op, collection, doc_id)
  local rev = ''
  if op ~= 'delete' then
    -- pcall: a script cannot undo the writes before it, so nothing here may raise.
    local raw = redis.pcall('JSON.GET', key, '.')
    if type(raw) == 'string' then
      rev = redis.sha1hex(raw)
      read_key, read_raw = key, raw
    end
  end
  redis.call('XADD', stream, '*', 'op', op, 'collection', collection, 'id', doc_id,
             'rev', rev, 'at', string.format('%d', now_ms()))
end

-- The largest stream id below id ('<ms>-<seq>'), written as Redis reads it.
local function before_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if seq ~= '0' then return ms .. '-' .. string.format('%d', tonumber(seq) - 1) end
  return string.format('%d', tonumber(ms) - 1) .. '-18446744073709551615'
end

-- The feed's cap: about maxlen events ('~': whole radix-tree nodes), none older than age_ms
-- (exact). XTRIM leaves the stream's max-deleted-entry-id alone, so it is set here (XSETID)
-- to the newest id removed (for the length, the one just below the first kept: only a
-- consumer that far behind can meet the difference), which is what tells a consumer resuming
-- from the newest removed event, even after a quiet spell took every event, from one that
-- missed some (keyspace.changes.trimmed_past). pcall: a server without MAXDELETEDID (fakeredis)
-- keeps the old rule, and nothing here may raise after the writes.
local function trim_feed(stream, maxlen, age_ms)
  local removed = nil
  -- XTRIM's count says whether it removed anything: at the cap, nearly every commit trims
  -- nothing ('~' waits for a whole node), and reads nothing more.
  if redis.call('XLEN', stream) > tonumber(maxlen)
      and redis.call('XTRIM', stream, 'MAXLEN', '~', maxlen) > 0 then
    local kept = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if kept then removed = before_id(kept[1]) end
  end
  local oldest = now_ms() - age_ms
  local cut = string.format('%d', oldest)
  -- The first entry, when it is older than the cut, says that anything is: a reverse range
  -- that finds nothing below the cut visits the whole stream (measured: 10 ms at 77k
  -- entries), and this forward one stops at the first entry, as a rule returning nothing.
  if oldest > 0 and redis.call('XRANGE', stream, '-', '(' .. cut .. '-0', 'COUNT', 1)[1] then
    local aged = redis.call('XREVRANGE', stream, '(' .. cut .. '-0', '-', 'COUNT', 1)[1]
    if aged then
      removed = aged[1]  -- newer than anything the length trim removed
      redis.call('XTRIM', stream, 'MINID', cut)
    end
  end
  local top = removed and redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if top then redis.pcall('XSETID', stream, top[1], 'MAXDELETEDID', removed) end
end

local function write(op, a)
  local key = K[a[1]]
  if op ~= 'event' and op ~= 'eventid' and op ~= 'trim' and op ~= 'outcome' then
    read_key = nil
  end
  if op == 'jset' then redis.call('JSON.SET', key, '$', a[2])
  elseif op == 'del' then redis.call('DEL', key)
  elseif op == 'set' then redis.call('SET', key, a[2])
  elseif op == 'delif' then
    if redis.call('GET', key) == a[2] then redis.call('DEL', key) end
  elseif op == 'sadd' then redis.call('SADD', key, a[2])
  elseif op == 'srem' then redis.call('SREM', key, a[2])
  elseif op == 'floor' then
    local cur = tonumber(redis.call('GET', key) or '0')
    if cur < tonumber(a[2]) then redis.call('SET', key, a[2]) end
  elseif op == 'incr' then redis.call('INCR', key)
  elseif op == 'bump' then
    if not redis.call('SET', key, a[2], 'NX') then redis.call('INCR', key) end
  elseif op == 'hset' then redis.call('HSET', key, a[2], a[3])
  elseif op == 'hdel' then redis.call('HDEL', key, a[2])
  elseif op == 'hsetx' then
    if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, a[2], a[3]) end
  elseif op == 'pexpire' then redis.call('PEXPIRE', key, a[2])
  elseif op == 'jsetid' then redis.call('JSON.SET', key, '$', a[2] .. id .. a[3])
  elseif op == 'setid' then redis.call('SET', key, id)
  elseif op == 'saddid' then redis.call('SADD', key, id)
  elseif op == 'jsetat' then redis.call('JSON.SET', key .. id, '$', a[2] .. id .. a[3])
  elseif op == 'keepttl' then
    if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, a[2]) end
  elseif op == 'ttlof' then expire_as(key, K[tonumber(a[2])])
  elseif op == 'ttlat' then expire_as(key .. id, K[tonumber(a[2])])
  elseif op == 'outcome' then
    local ret = tonumber(ARGV[2])
    local doc = ret > 0 and returned(ret) or ''
    redis.call('SET', key, a[2] .. doc, 'PX', a[3])
  elseif op == 'event' then append_event(key, K[tonumber(a[2])], a[3], a[4], a[5])
  elseif op == 'eventid' then append_event(key, K[tonumber(a[2])], a[3], a[4], id)
  elseif op == 'trim' then trim_feed(key, a[2], tonumber(a[3]))
  elseif op == 'zadd' then redis.call('ZADD', key, a[2], a[3])
  elseif op == 'zaddid' then redis.call('ZADD', key, a[2], id)
  elseif op == 'zrem' then redis.call('ZREM', key, a[2])
  end
end

-- The ops that write under the id the script draws (ARGV[3]).
local function uses_id(op)
  return op == 'jsetid' or op == 'setid' or op == 'saddid' or op == 'jsetat' or op == 'ttlat'
      or op == 'eventid' or op == 'zaddid'
end
local drawing = (tonumber(ARGV[3]) or 0) > 0
if drawing and not K[tonumber(ARGV[5])] then return fail('bad_plan', 'draw', ARGV[5]) end
-- ARGV[2]: a dry run, nothing to return, or a key's index (anything else raised after the
-- writes, review 38).
if ARGV[2] ~= '-1' and ARGV[2] ~= '0' and not K[tonumber(ARGV[2])] then
  return fail('bad_plan', 'return', ARGV[2] or '')
end

-- Parse every op before running any, so a malformed plan writes nothing.
local ops, args = {}, {}  -- each op's name, and its arguments
local i = 7
while i <= #ARGV do
  local op = ARGV[i]
  local width = arity_of(op)
  if not width or i + width > #ARGV then return fail('bad_plan', op or '', tostring(i)) end
  ops[#ops + 1] = op
  local a = {unpack(ARGV, i + 1, i + width)}
  -- Every op's first argument is a KEYS index: a number once here, since tonumber is a
  -- strtod (the most of the script's own time of any library call, measured with perf).
  a[1] = tonumber(a[1])
  -- A key index outside KEYS, or an op of the drawn id where none is drawn, would raise
  -- after the plan's earlier writes (review 37).
  if not K[a[1]] or (uses_id(op) and not drawing) then return fail('bad_plan', op, tostring(i)) end
  args[#ops] = a
  i = i + width + 1
end

-- What a write op needs its key to hold, when the key exists: a Redis type, 'json' (a
-- RedisJSON document) or 'integer' (a string INCR accepts and can increment). The other
-- ops work on a key of any type: del, set, setid, pexpire, and jsetid (its key is one the
-- draw found free).
local function needs_of(op)
  if op == 'jset' then return 'json'
  elseif op == 'sadd' or op == 'srem' or op == 'saddid' then return 'set'
  elseif op == 'event' or op == 'eventid' or op == 'trim' then return 'stream'
  elseif op == 'zadd' or op == 'zaddid' or op == 'zrem' then return 'zset'
  elseif op == 'floor' or op == 'incr' or op == 'bump' then return 'integer'
  elseif op == 'hset' or op == 'hdel' or op == 'hsetx' then return 'hash'
  elseif op == 'delif' then return 'string'
  end
  return nil
end
-- The other ops work on a key of any type too: keepttl, ttlof and ttlat only set its TTL.
-- What a key holds after a write op (none listed: as before, or deleted), so a later op of
-- the plan is checked against what the plan itself leaves there.
local function leaves_of(op)
  if op == 'jset' then return 'json'
  elseif op == 'set' or op == 'setid' then return 'string'
  elseif op == 'sadd' or op == 'saddid' then return 'set'
  elseif op == 'event' or op == 'eventid' then return 'stream'
  elseif op == 'zadd' or op == 'zaddid' then return 'zset'
  elseif op == 'floor' or op == 'incr' or op == 'bump' then return 'integer'
  elseif op == 'hset' then return 'hash'
  elseif op == 'del' then return 'none'
  end
  return nil
end

-- '0' or -?[1-9][0-9]* within int64 and below its maximum: what INCR takes and increments.
local function incrementable(raw)
  if raw == '0' then return true end
  local sign, digits = string.match(raw, '^(%-?)([1-9]%d*)$')
  if not digits or #digits > 19 then return false end
  if #digits < 19 then return true end
  if sign == '-' then return digits <= '9223372036854775808' end
  return digits < '9223372036854775807'
end

-- What key holds, as named in needs ('integer' only when asked for), or a Redis type name.
local function kind_of(key, want)
  local reply = redis.pcall('TYPE', key)
  local name = type(reply) == 'table' and reply.ok or '?'
  if name == 'string' and want == 'integer' then
    return incrementable(redis.call('GET', key)) and 'integer' or 'string'
  end
  if name == 'none' or name == 'string' or name == 'hash' or name == 'set' or name == 'list'
      or name == 'zset' or name == 'stream' then
    return name
  end
  -- A module's type: JSON.TYPE, not TYPE's name for it, says whether JSON.SET accepts it.
  local json = redis.pcall('JSON.TYPE', key, '$')
  if type(json) == 'table' and not json.err and json[1] then return 'json' end
  return name
end

-- A score ZADD takes, as Python writes a float: no hex, inf or nan (which ZADD refuses or
-- Lua reads otherwise).
local function is_score(raw)
  return string.match(raw, '^%-?%d+%.?%d*$') ~= nil
      or string.match(raw, '^%-?%d+%.?%d*[eE][%+%-]?%d+$') ~= nil
end

local function fits(have, want)
  return have == 'none' or have == want or (want == 'string' and have == 'integer')
end

-- The value of a counter an id is drawn from (0 when missing); nil unless it holds a
-- non-negative integer.
local function counter_value(key)
  local raw = redis.pcall('GET', key)  -- an error reply for a key of another type
  if not raw then return 0 end
  if type(raw) == 'string' and (raw == '0' or string.match(raw, '^[1-9]%d*$')) then
    return tonumber(raw)
  end
  return nil
end

local window = ARGV[6] ~= '' and tonumber(ARGV[6]) or nil

-- Refuse, before the first write, every op that would raise or is not allowed.
local function writable(n_first)
  local known = {}  -- key -> what an earlier write op of the plan leaves there
  for n = n_first, #ops do
    local op, a = ops[n], args[n]
    local key = K[a[1]]
    local numeric = op == 'floor' or op == 'pexpire' or op == 'keepttl' or op == 'bump'
    if numeric and not string.match(a[2], '^%d+$') then
      return fail('bad_plan', op, a[2])
    end
    -- A time in ms that PEXPIRE and SET PX take: at most 15 digits (~31,000 years; a longer
    -- one was refused by Redis after the plan's earlier writes, review 38).
    if (op == 'pexpire' or op == 'keepttl') and #a[2] > 15 then
      return fail('bad_plan', op, a[2])
    end
    if op == 'outcome' and not (string.match(a[3], '^[1-9]%d*$') and #a[3] <= 15) then
      return fail('bad_plan', op, a[3])
    end
    if op == 'trim' and not (string.match(a[2], '^%d+$') and string.match(a[3], '^%d+$')) then
      return fail('bad_plan', op, a[2] .. ' ' .. a[3])
    end
    if (op == 'event' or op == 'eventid') and not K[tonumber(a[2]) or 0] then
      return fail('bad_plan', op, a[2])
    end
    if (op == 'ttlof' or op == 'ttlat') and not K[tonumber(a[2]) or 0] then
      return fail('bad_plan', op, a[2])
    end
    if (op == 'zadd' or op == 'zaddid') and not is_score(a[2]) then
      return fail('bad_plan', op, a[2])
    end
    local want = needs_of(op)
    if want and not fits(known[key] or kind_of(key, want), want) then
      return fail('wrong_type', op, key)
    end
    if op == 'floor' and window then
      -- Measured from the live counter (0 when missing).
      local now = kind_of(key, 'integer') == 'integer' and tonumber(redis.call('GET', key)) or 0
      if tonumber(a[2]) - now > window then
        return fail('import_window', key, string.format('%d', now + window))
      end
    end
    local left = leaves_of(op)
    if op == 'set' and incrementable(a[2]) then left = 'integer' end
    if left then known[key] = left end
  end
  return nil
end

-- Checked in this script, not by the caller, so a write authorized before the pause cannot
-- commit after it.
if string.sub(K[1] or '', -#PAUSE) ~= PAUSE then return fail('bad_plan', 'pause', K[1] or '') end
if redis.call('EXISTS', K[1]) == 1 then return fail('paused', '', K[1]) end

local n_checks = tonumber(ARGV[1])
for n = 1, n_checks do
  local result = check(ops[n], args[n])
  if result then return result end
end
local bad = writable(n_checks + 1)
if bad then return bad end

if ARGV[2] == '-1' then
  local counter = tonumber(ARGV[3])
  if counter > 0 then
    local n = counter_value(K[counter])
    if not n then return fail('wrong_type', 'incr', K[counter]) end
    if n >= MAX_COUNTER then return fail('counter_exhausted', '', K[counter]) end
  end
  local dry = {'ok', false}
  for n = n_checks + 1, #ops do
    if ops[n] == 'floor' then
      dry[#dry + 1] = K[args[n][1]]
      dry[#dry + 1] = args[n][2]
    end
  end
  return dry
end

local counter = tonumber(ARGV[3])
if counter > 0 then
  local doc = tonumber(ARGV[5])
  -- Nothing is written yet: a counter that holds no integer refuses the create whole.
  local n = counter_value(K[counter])
  if not n then return fail('wrong_type', 'incr', K[counter]) end
  for _ = 1, 64 do
    -- At the end of the range: the INCRs that skipped taken ids stay (those ids are taken).
    if n >= MAX_COUNTER then return fail('counter_exhausted', '', K[counter]) end
    n = redis.call('INCR', K[counter])
    -- '%d', not '..': Lua writes numbers past 10^14 as '1e+14'.
    local candidate = ARGV[4] .. string.format('%d', n)
    local free = redis.call('EXISTS', K[doc] .. candidate) == 0
    for m = n_checks + 1, #ops do
      if free and ops[m] == 'jsetat' then
        free = redis.call('EXISTS', K[args[m][1]] .. candidate) == 0
      end
    end
    if free then
      id = candidate
      break
    end
  end
  if not id then return fail('contention', '', K[counter]) end
  K[doc] = K[doc] .. id
end
for n = n_checks + 1, #ops do
  write(ops[n], args[n])
end

local ret = tonumber(ARGV[2])
if ret > 0 then return {'ok', returned(ret)} end
return {'ok', false}
