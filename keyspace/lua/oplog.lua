-- oplog.lua: append to or read one document's operation log.
--
-- KEYS[1]: the pause key mf:pause (keys.pause_key, under the system's namespace): while it
--          exists nothing is read or written ('paused', the key).
-- KEYS[2]: the log, e.g. doc:ops:<id> (Names.oplog_key): a list of the seed's JSON entries
--          ({"user_id", "operation", "position", "content", "timestamp"}), oldest first.
-- KEYS[3]: the log's sequence counter mf:seq:doc:ops:<id> (Names.oplog_seq_key): the number
--          of the last entry ever appended. It never expires, so numbers are never reused.
-- KEYS[4]: the document: a log is written and read only while it exists.
-- KEYS[5]: the document's lock (append, lockable entities only; see lock.lua).
-- ARGV[1]: 'append' or 'read'.
-- append: ARGV[2] the log's time to live in ms (from this append), ARGV[3] the cap (entries
--         kept), ARGV[4] the caller's user id, ARGV[5] '1' when only the lock's holder may
--         append while the document is locked, ARGV[6] '' or the fencing token the lock must
--         carry, ARGV[7..] the entries (JSON text), appended in order.
-- read:   ARGV[2] since (the last number the client has), ARGV[3] the most entries to return.
-- Numbering: the list holds exactly the newest entries, so with last = KEYS[3] and n = LLEN,
-- the kept entries are numbered last - n + 1 .. last and the i-th (0-based) is last - n + 1 + i:
-- no entry stores its number, and a read finds its start in O(1). A counter behind its list
-- (lost while the list stayed) is taken as the list's length.
-- Returns:
--   {'ok', first}                  append: the entries are numbered first .. first + count - 1
--   {'ok', oldest, last, e1, ...}  read: the entries numbered since + 1 .. (at most ARGV[3]);
--                                  oldest: the oldest kept entry's number (last + 1 if none)
--   {'paused', key}                KEYS[1] exists
--   {'not_found'}                  the document does not exist
--   {'locked', lock JSON, pttl}    append: another user holds the lock of a guarded log
--   {'stale_token', lock JSON or false, pttl}
--                                  append: ARGV[6] is not the current lock's fencing token
--   {'gone', oldest, last}         read: since < oldest - 1 (entries after it were dropped or
--                                  expired) or since > last (no such entry: the log was reset)
-- Nothing is written unless an append answers 'ok'.

if redis.call('EXISTS', KEYS[1]) == 1 then return {'paused', KEYS[1]} end
if redis.call('EXISTS', KEYS[4]) == 0 then return {'not_found'} end

local last = tonumber(redis.call('GET', KEYS[3]) or '0')
local kept = redis.call('LLEN', KEYS[2])
if last < kept then last = kept end

if ARGV[1] == 'read' then
  local since, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
  local oldest = last - kept + 1
  if since < oldest - 1 or since > last then return {'gone', oldest, last} end
  local start = since - oldest + 1
  local out = {'ok', oldest, last}
  for _, entry in ipairs(redis.call('LRANGE', KEYS[2], start, start + limit - 1)) do
    out[#out + 1] = entry
  end
  return out
end

if ARGV[1] ~= 'append' then return redis.error_reply('ERR oplog.lua: unknown op') end
if KEYS[5] then
  local raw = redis.call('GET', KEYS[5])
  local lock = {}
  if raw then
    local ok, decoded = pcall(cjson.decode, raw)
    if ok and type(decoded) == 'table' then lock = decoded end
  end
  if raw and ARGV[5] == '1' and lock.user_id ~= ARGV[4] then
    return {'locked', raw, redis.call('PTTL', KEYS[5])}
  end
  if ARGV[6] ~= '' and (not raw or lock.fencing_token ~= tonumber(ARGV[6])) then
    return {'stale_token', raw or false, raw and redis.call('PTTL', KEYS[5]) or 0}
  end
end
local count = #ARGV - 6
redis.call('RPUSH', KEYS[2], unpack(ARGV, 7))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], string.format('%d', last + count))
return {'ok', last + 1}
