-- tasklane-redis: one admission decision, atomic on the server (GCRA on the server's clock, plus
-- a concurrency held as leases that expire). Every key is `{name}:...`, so in a Redis Cluster all
-- of them hash to the slot of `name`.
--
-- KEYS[1]  {name}:gcra   the rate's theoretical arrival time (TAT), microseconds of server time
-- KEYS[2]  {name}:lease  the concurrency's leases: a sorted set, id -> expiry (ms of server time)
-- ARGV[1]  interval      microseconds between two units at the rate (0: no rate)
-- ARGV[2]  burst         units that may start at once after an idle time
-- ARGV[3]  want          units of the rate this call needs (0: none; the caller has them)
-- ARGV[4]  most          units of the rate to grant at most (>= want: a lease of several)
-- ARGV[5]  limit         the concurrency (0: no concurrency)
-- ARGV[6]  ttl           milliseconds a lease lives after it is taken or renewed
-- ARGV[7]  poll          milliseconds to wait at most before asking again when the concurrency is full
-- ARGV[8]  ahead         microseconds ahead a denied call may reserve its units of the rate
-- ARGV[9]  refund        units of the rate given back unused (leased, never started)
-- ARGV[10] nfree, ARGV[11] nrenew, ARGV[12] nnew: then nfree lease ids to give back, nrenew to
--          renew, nnew to take (all or none)
--
-- Returns {1, units, 0}: admitted, with `units` of the rate (want <= units <= most) and the new
--         leases taken;
--         {3, units, wait}: reserved: `units` units (want <= units <= most, as many as fit) and
--         the new leases are the caller's, to start in `wait` microseconds (at most `ahead`),
--         without asking again;
--         {0, 0, retry}: the rate denies `want` units: ask again in `retry` microseconds, when
--         they could be reserved;
--         {2, 0, retry}: the concurrency is full; ask again in `retry` microseconds.
-- Frees, renewals and the refund are applied whatever the answer.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local most = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local poll = tonumber(ARGV[7])
local ahead = tonumber(ARGV[8])
local refund = tonumber(ARGV[9])
local nfree = tonumber(ARGV[10])
local nrenew = tonumber(ARGV[11])
local nnew = tonumber(ARGV[12])

-- The concurrency: give back, renew, forget the expired, then check room for the new leases.
local at = 13
if nfree + nrenew + nnew > 0 then
  for _ = 1, nfree do
    redis.call('ZREM', KEYS[2], ARGV[at])
    at = at + 1
  end
  for _ = 1, nrenew do
    redis.call('ZADD', KEYS[2], 'XX', now_ms + ttl, ARGV[at])
    at = at + 1
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
  if nnew > 0 and redis.call('ZCARD', KEYS[2]) + nnew > limit then
    -- Full: the earliest expiry is the latest a unit comes back without a release.
    local wait = poll
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if first[2] then
      wait = math.min(wait, tonumber(first[2]) - now_ms)
    end
    return {2, 0, math.max(wait, 1) * 1000}
  end
end

-- The rate: GCRA. `tat` is when the schedule is free again; `burst` units fit in
-- [now, now + burst * interval], so `room` units may start now.
local units = want
local status = 1
local wait = 0
-- Sets the schedule: kept while it says anything (once `tat` has passed, a missing key means the
-- same).
local function store(tat)
  redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end

if interval > 0 and (want > 0 or refund > 0) then
  local tat = now
  local stored = redis.call('GET', KEYS[1])
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  -- Units given back move the schedule back, never before now (no credit beyond the burst).
  if refund > 0 then
    tat = math.max(tat - refund * interval, now)
  end
  if want > 0 then
    local room = math.floor((now + burst * interval - tat) / interval + 1e-9)
    if room >= want then
      units = math.min(room, most)
    else
      -- Not now: reserve as many units (want..most) as fit in the schedule within `ahead`.
      local fit = math.floor((now + ahead + burst * interval - tat) / interval + 1e-9)
      if fit < want then
        if refund > 0 then
          store(tat)
        end
        return {0, 0, math.max(math.ceil(tat + want * interval - burst * interval - now - ahead), 1)}
      end
      units = math.min(fit, most)
      status = 3
      wait = math.max(math.ceil(tat + units * interval - burst * interval - now), 1)
    end
    tat = tat + units * interval
  end
  store(tat)
end

if nnew > 0 then
  for _ = 1, nnew do
    redis.call('ZADD', KEYS[2], now_ms + ttl, ARGV[at])
    at = at + 1
  end
end
if nnew + nrenew > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {status, units, wait}
