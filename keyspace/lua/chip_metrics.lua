-- chip_metrics.lua: write one chip's metrics without touching any other chip.
--
-- KEYS[1]: the analytics document (analytics:metrics).
-- KEYS[2]: the pause key (mf:pause): while it exists nothing is written.
-- ARGV[1]: JSONPath of the chip's entry, e.g. $.chip_metrics["chip_quantum_1"]
--          (the chip id is validated to [A-Za-z0-9_.-] before it is put in a path).
-- ARGV[2]: the chip's metrics as JSON.
-- ARGV[3]: the document to start from when the key is missing ({"chip_metrics": {}}).
-- Returns: the chip's metrics as stored (JSON text), or the error reply 'PAUSED ...' when
--          KEYS[2] exists.

if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('PAUSED the keyspace is paused; nothing was written')
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('JSON.SET', KEYS[1], '$', ARGV[3])
end
redis.call('JSON.SET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('JSON.GET', KEYS[1], ARGV[1])
