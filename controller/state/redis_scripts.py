"""The Lua scripts of :mod:`topfib.controller.state.redis_store`: each write of requests or config overrides
is
one script, so the per-AP cap and the change log hold however many API replicas write at once,
and a write is one command for WAIT to count."""

import hashlib

# Appended to each script that changes requests: log ``member`` as the switch's latest change;
# trim it back to ``keep`` members when it grew ``slack`` past them. ``mark_write`` ends a script
# that logged: the counter's value is marked with the write's random token, so a reader whose
# cursor's mark is gone knows those numbers now stand for other changes (Redis went back to an
# older copy, or a promoted replica missed writes, and was written again since).
LOG_CHANGE = """
local function log_change(seq_key, log_key, trim_key, member, keep, slack)
  local seq = redis.call('INCR', seq_key)
  redis.call('ZADD', log_key, seq, member)
  local size = redis.call('ZCARD', log_key)
  if size > keep + slack then
    local last = redis.call('ZRANGE', log_key, size - keep - 1, size - keep - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', log_key, 0, size - keep - 1)
    redis.call('SET', trim_key, last[2])
  end
  return seq
end
local function mark_write(mark_key, seq, token, keep, slack)
  redis.call('ZADD', mark_key, seq, token)
  local size = redis.call('ZCARD', mark_key)
  if size > keep + slack then redis.call('ZREMRANGEBYRANK', mark_key, 0, size - keep - 1) end
end
"""

# KEYS: exp, at, ap-set, switches, seq, log, trim, gen, mark. ARGV: now, limit, switch, a fresh
# random token (the generation if the switch has none, and this write's mark), log max, log slack,
# then (ip, member, requested_at, expires_at) per entry.
ADD_SCRIPT = LOG_CHANGE + """
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('SET', KEYS[8], ARGV[4], 'NX')
local keep, slack = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, member in ipairs(expired) do redis.call('HDEL', KEYS[2], member) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local count = redis.call('ZCARD', KEYS[3])
local accepted = {}
local logged
for i = 7, #ARGV, 4 do
  local ip, member = ARGV[i], ARGV[i + 1]
  local held = redis.call('ZSCORE', KEYS[3], ip)
  if held or count < limit then
    if not held then count = count + 1 end
    redis.call('ZADD', KEYS[3], ARGV[i + 3], ip)
    redis.call('ZADD', KEYS[1], ARGV[i + 3], member)
    redis.call('HSET', KEYS[2], member, ARGV[i + 2])
    logged = log_change(KEYS[5], KEYS[6], KEYS[7], member, keep, slack)
    accepted[#accepted + 1] = 1
  else
    accepted[#accepted + 1] = 0
  end
end
if logged then mark_write(KEYS[9], logged, ARGV[4], keep, slack) end
return accepted
"""
ADD_SHA = hashlib.sha1(ADD_SCRIPT.encode()).hexdigest()  # what EVALSHA names it by
ADD_KEYS = 9

# KEYS: config hash, config switches. ARGV: switch, n, n keys to clear, then key/value pairs.
# Returns the hash after the change (flat). One script so that a write is one command (see WAIT).
CONFIG_SCRIPT = """
redis.call('SADD', KEYS[2], ARGV[1])
local n = tonumber(ARGV[2])
if n > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 3, 2 + n)) end
for i = 3 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: exp, at, ap-set, seq, log, trim, mark. ARGV: now, ip, member, log max, log slack, a
# fresh random token (this write's mark). Returns 1 when an unexpired entry was removed.
REMOVE_SCRIPT = LOG_CHANGE + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[2])
if not score then return 0 end
local keep, slack = tonumber(ARGV[4]), tonumber(ARGV[5])
local seq = log_change(KEYS[4], KEYS[5], KEYS[6], ARGV[3], keep, slack)
mark_write(KEYS[7], seq, ARGV[6], keep, slack)
if tonumber(score) > tonumber(ARGV[1]) then return 1 end
return 0
"""
