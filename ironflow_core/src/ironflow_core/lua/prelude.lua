-- IronFlow sandbox prelude: runs once in every fresh Lua state, before any
-- flow code.  It keeps private references to what the sandbox needs, installs
-- the limit hook and the bounded library wrappers, builds the user
-- environment and returns the private entry points to Python.  A runtime
-- state may serve several executions one after the other: `P.begin` gives
-- each one a brand-new user environment (globals, library tables, string
-- metatable stand-in, random seed), so nothing user code can reach outlives
-- its execution.
--
-- Only locals are used here: nothing in this chunk reads a global after it
-- has run, so user code cannot interfere with it.

-- Python passes three comma-separated name lists (host functions, settings,
-- private entry points to return) followed by the host and setting values.
local host_names, cfg_names, private_names = ...
local H, cfg = {}, {}
do
  local args, i = table.pack(...), 4
  for name in string.gmatch(host_names, "[^,]+") do H[name] = args[i]; i = i + 1 end
  for name in string.gmatch(cfg_names, "[^,]+") do cfg[name] = args[i]; i = i + 1 end
end

local G = _G
local type, error, select, tostring, tonumber = type, error, select, tostring, tonumber
local pcall, xpcall, next, rawget, rawequal = pcall, xpcall, next, rawget, rawequal
local setmetatable, getmetatable = setmetatable, getmetatable
local debug, load, collectgarbage = debug, load, collectgarbage
local string, table, math, utf8 = string, table, math, utf8

local sethook = debug.sethook
local getinfo, getupvalue = debug.getinfo, debug.getupvalue
local d_setmetatable, d_getmetatable = debug.setmetatable, debug.getmetatable
local s_dump, s_format, s_sub, s_byte, s_char = string.dump, string.format, string.sub, string.byte, string.char
local s_find, s_gsub = string.find, string.gsub
local t_concat, t_unpack, t_pack, t_sort = table.concat, table.unpack, table.pack, table.sort
local m_type, m_tointeger, m_huge, m_maxinteger = math.type, math.tointeger, math.huge, math.maxinteger
local m_min, m_max, m_log = math.min, math.max, math.log
local u_len = utf8.len
local s_lower = string.lower

local on_hook, on_check, on_gc, on_trip = H.on_hook, H.on_check, H.on_gc, H.on_trip
local on_mode = H.on_mode
local TRIP = { cfg.trip1, cfg.trip2, cfg.trip3, cfg.trip4, cfg.trip5, cfg.trip6 }
local SLICE = 6
local BUDGET = cfg.budget
local QUANTUM = cfg.quantum
-- Per execution (`P.begin`): work between two clock checks, and during an
-- inline slice the largest single C operation allowed (false: no such cap).
local quantum = QUANTUM
local slice_op = false
local MOVE_CHUNK = 65536

local P = {}          -- private entry points handed back to Python
local tripped = false

---------------------------------------------------------------------------
-- Limits: the count hook, work charging for C functions, GC sentinel
---------------------------------------------------------------------------
local hook
hook = function()
  local r = on_hook()
  if r ~= 0 then
    if r > 0 then
      sethook(hook, "", r)
    else
      tripped = true
      sethook(hook, "", 1)
      error(TRIP[-r], 0)
    end
  end
end

-- Once a limit trips the hook fires on every instruction, so a pcall can
-- catch the error but the very next instruction outside it fails again.
local function trip(code)
  tripped = true
  sethook(hook, "", 1)
  error(TRIP[code], 0)
end

local work = 0
local function account(n)
  work = work + n
  if work >= quantum then
    work = 0
    local r = on_check()
    if r ~= 0 then
      if r > 0 then sethook(hook, "", r) else trip(-r) end
    end
  end
end

-- Charge an operation whose cost is known before it runs.  An inline slice
-- must stay short, so there one that could take long ends the slice first.
local function charge(n)
  if slice_op and n > slice_op then
    on_trip()
    trip(SLICE)
  end
  account(n)
end

-- A finalizer that re-arms itself runs once per GC cycle, i.e. whenever
-- memory has grown: it lets Python shrink the hook interval while big
-- strings exist (one VM instruction on them can cost milliseconds).
local sentinel_mt = {}
sentinel_mt.__gc = function()
  local r = on_gc()
  if r == -2 then return end            -- the state is being closed
  if r > 0 then sethook(hook, "", r) elseif r < 0 then sethook(hook, "", 1) end
  setmetatable({}, sentinel_mt)
end
setmetatable({}, sentinel_mt)

-- Before the state is closed: the sentinel's finalizer must not call back
-- into Python while lupa tears the state down (``lua_close`` runs it).
P.retire = function()
  sentinel_mt.__gc = nil
  sethook()
end

sethook(hook, "", cfg.interval)

-- The memory ceiling is armed only while user code runs; lupa's own
-- pushes into the state must never hit it (that would be a Lua panic).
local arm, disarm
if cfg.mem_limited then
  arm, disarm = H.arm, H.disarm
else
  arm = function() end
  disarm = arm
end

-- Host results are `ok, ...`; failures are `false, message, trip_code`.
-- Always tail-called, so level 2 is the user code that called the global.
local function unwrap(ok, ...)
  arm()
  if ok then return ... end
  local msg, code = ...
  if code then trip(code) end
  error(msg, 2)
end

-- C functions are called through pcall: their messages then carry no
-- position, and `rethrow` (tail-called, so level 2 is the user's code) adds
-- the user's line instead of the wrapper's.  Messages that already carry a
-- position (raised by Lua callbacks) are passed on unchanged.
local function rethrow(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "string" then
    if s_sub(e, 1, 6) == "?:-1: " then e = s_sub(e, 7) end
    if not s_find(e, "^[^:\n]*:%d+: ") then error(e, 2) end
  end
  error(e, 0)
end

local function hostcheck(level, ok, ...)
  arm()
  if ok then return ... end
  local msg, code = ...
  if code then trip(code) end
  error(msg, level)
end

---------------------------------------------------------------------------
-- Safer base functions
---------------------------------------------------------------------------
local safe = {}

safe.setmetatable = function(t, mt)
  -- Finalizers run with hooks disabled: they would escape every limit.
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed in the IronFlow sandbox", 2)
  end
  return rethrow(pcall(setmetatable, t, mt))
end

safe.xpcall = function(f, msgh, ...)
  if type(msgh) ~= "function" then
    return xpcall(f, msgh, ...)
  end
  -- A message handler invoked for a limit error runs with hooks disabled.
  return xpcall(f, function(e)
    if tripped then return e end
    return msgh(e)
  end, ...)
end

---------------------------------------------------------------------------
-- Bounded string library
---------------------------------------------------------------------------
local h_degree = H.pattern_degree
local pc_cache, pc_gcache, pc_count = {}, {}, 0

local function pattern_cost(p, n, gm)
  local cache = gm and pc_gcache or pc_cache
  local v = cache[p]
  if v == nil then
    v = h_degree(p, gm)
    if pc_count >= 512 then
      pc_cache, pc_gcache, pc_count = {}, {}, 0
      cache = gm and pc_gcache or pc_cache
    end
    cache[p] = v
    pc_count = pc_count + 1
  end
  local m = #p + 1
  if v < 0 then return n * m end
  local d, q = v // 4096, v % 4096
  if q > 60 then q = 60 end
  return (n + 1.0) ^ d * 2.0 ^ q * m
end

local function optint(v, argn, fname, default)
  if v == nil then return default end
  local i = m_tointeger(v)
  if i == nil then
    local tv = type(v)
    local why = (tv == "number" or tonumber(v)) and "number has no integer representation"
      or ("number expected, got " .. (tv == "nil" and "no value" or tv))
    error(s_format("bad argument #%d to '%s' (%s)", argn, fname, why), 3)
  end
  return i
end

local h_find, h_gm_open, h_gm_next = H.find, H.gmatch_open, H.gmatch_next
local h_gs_open, h_gs_next, h_release = H.gsub_open, H.gsub_next, H.release

local function slow_find(s, p, init, plain, isfind)
  disarm()
  return unwrap(h_find(s, p, init, plain, isfind))
end

local function slow_gmatch(s, p, init)
  disarm()
  local h = hostcheck(3, h_gm_open(s, p, init))
  return function()
    disarm()
    return unwrap(h_gm_next(h))
  end
end

local function slow_gsub(s, p, repl, max_n, tr)
  disarm()
  local h = hostcheck(3, h_gs_open(s, p, tr == "string" and repl or nil))
  local out, no = {}, 0
  local src, lastmatch, n, changed = 0, -1, 0, false
  local anchor = s_byte(p, 1) == 94
  while n < max_n do
    disarm()
    local r = t_pack(hostcheck(3, h_gs_next(h, src, lastmatch)))
    local st = r[1]
    if st == nil then break end
    local e = r[2]
    n = n + 1
    if st > src then no = no + 1; out[no] = s_sub(s, src + 1, st) end
    if tr == "string" then
      no = no + 1; out[no] = r[3]; changed = true
    else
      local whole = s_sub(s, st + 1, e)
      local val
      if tr == "table" then
        if r[3] == 0 then val = repl[whole] else val = repl[r[4]] end
      elseif r[3] == 0 then
        val = repl(whole)
      else
        val = repl(t_unpack(r, 4, 3 + r[3]))
      end
      if not val then
        val = whole
      else
        local tv = type(val)
        if tv == "number" then val = tostring(val)
        elseif tv ~= "string" then error("invalid replacement value (a " .. tv .. ")", 3) end
        changed = true
      end
      no = no + 1; out[no] = val
    end
    src, lastmatch = e, e
    charge(e - st + 1)
    if anchor then break end
  end
  disarm()
  h_release(h)
  arm()
  if not changed then return s, n end
  no = no + 1; out[no] = s_sub(s, src + 1)
  return t_concat(out), n
end

local function strarg(v)
  if type(v) == "number" then return tostring(v) end
  return v
end

-- Wrappers tail-call the C function, so its errors carry the user's line
-- and, via the originals kept in the (private) real globals table, its name.
-- Work is charged before the call from what the arguments allow to know.
local originals = {}

do
  local find, match, gmatch, gsub = string.find, string.match, string.gmatch, string.gsub
  originals.find, originals.match, originals.gmatch, originals.gsub = find, match, gmatch, gsub

  string.find = function(s, p, init, plain)
    s, p = strarg(s), strarg(p)
    if type(s) ~= "string" or type(p) ~= "string" then return rethrow(pcall(find, s, p, init, plain)) end
    local n = #s
    local cost = plain and n * (#p + 1) or pattern_cost(p, n, false)
    if cost <= BUDGET then
      charge(cost)
      return rethrow(pcall(find, s, p, init, plain))
    end
    charge(BUDGET)
    return slow_find(s, p, optint(init, 3, "find", 1), plain and true or false, true)
  end

  string.match = function(s, p, init)
    s, p = strarg(s), strarg(p)
    if type(s) ~= "string" or type(p) ~= "string" then return rethrow(pcall(match, s, p, init)) end
    local cost = pattern_cost(p, #s, false)
    if cost <= BUDGET then
      charge(cost)
      return rethrow(pcall(match, s, p, init))
    end
    charge(BUDGET)
    return slow_find(s, p, optint(init, 3, "match", 1), false, false)
  end

  string.gmatch = function(s, p, init)
    s, p = strarg(s), strarg(p)
    if type(s) ~= "string" or type(p) ~= "string" then return rethrow(pcall(gmatch, s, p, init)) end
    local cost = pattern_cost(p, #s, true)
    if cost <= BUDGET then
      charge(cost)
      return rethrow(pcall(gmatch, s, p, init))
    end
    charge(BUDGET)
    return slow_gmatch(s, p, optint(init, 3, "gmatch", 1))
  end

  string.gsub = function(s, p, repl, max_n)
    s, p = strarg(s), strarg(p)
    local tr = type(repl)
    if type(s) ~= "string" or type(p) ~= "string" or (tr ~= "string" and tr ~= "number"
        and tr ~= "table" and tr ~= "function") then
      return rethrow(pcall(gsub, s, p, repl, max_n))
    end
    local n = #s
    local cost = pattern_cost(p, n, false)
    -- Each of up to n + 1 matches walks the whole replacement string, even
    -- where it adds nothing (`%1` of an empty capture).
    if tr == "string" then cost = cost + (n + 1.0) * #repl end
    if cost <= BUDGET then
      charge(cost + n)
      return rethrow(pcall(gsub, s, p, repl, max_n))
    end
    charge(BUDGET)
    if tr == "number" then repl = tostring(repl); tr = "string" end
    return slow_gsub(s, p, repl, optint(max_n, 4, "gsub", n + 1), tr)
  end

  local function slen(s)
    local t = type(s)
    if t == "string" then return #s end
    if t == "number" then return 24 end
    return 0
  end
  local function args_len(...)
    local total = 0
    for i = 1, select("#", ...) do total = total + slen((select(i, ...))) end
    return total
  end

  local rep, upper, lower, reverse = string.rep, string.upper, string.lower, string.reverse
  local format, pack, char, byte, sub = string.format, string.pack, string.char, string.byte, string.sub
  originals.rep, originals.upper, originals.lower, originals.reverse = rep, upper, lower, reverse
  originals.format, originals.pack, originals.char, originals.byte, originals.sub = format, pack, char, byte, sub

  string.rep = function(s, n, sep)
    local count = m_tointeger(n)
    if count and count > 0 then
      -- Empty pieces make the C loop spin `n` times for nothing.
      if s == "" and (sep == nil or sep == "") then return "" end
      charge((slen(s) + slen(sep)) * count)
    end
    return rethrow(pcall(rep, s, n, sep))
  end
  string.upper = function(s) charge(slen(s)); return rethrow(pcall(upper, s)) end
  string.lower = function(s) charge(slen(s)); return rethrow(pcall(lower, s)) end
  string.reverse = function(s) charge(slen(s)); return rethrow(pcall(reverse, s)) end
  string.sub = function(s, i, j) charge(slen(s)); return rethrow(pcall(sub, s, i, j)) end
  string.byte = function(s, i, j) charge(slen(s)); return rethrow(pcall(byte, s, i, j)) end
  string.char = function(...) charge(select("#", ...)); return rethrow(pcall(char, ...)) end
  string.format = function(...) charge(args_len(...)); return rethrow(pcall(format, ...)) end
  string.pack = function(...) charge(args_len(...)); return rethrow(pcall(pack, ...)) end
  string.dump = nil
end

---------------------------------------------------------------------------
-- Bounded table library
---------------------------------------------------------------------------
do
  local concat, sort, insert, remove, move = table.concat, table.sort, table.insert, table.remove, table.move
  originals.concat, originals.sort, originals.insert, originals.remove, originals.move =
    concat, sort, insert, remove, move

  -- The output is made of strings that already exist (the adaptive hook
  -- covers them); a flat charge keeps repeated calls checking the clock.
  table.concat = function(t, sep, i, j)
    account(quantum // 16)
    return rethrow(pcall(concat, t, sep, i, j))
  end

  -- Without a comparator the C sort compares strings without ever calling
  -- the hook; use a Lua comparator when that could take long.
  local function lt(a, b) return a < b end
  table.sort = function(t, comp)
    if comp == nil and type(t) == "table" then
      local n = #t
      if m_type(n) == "integer" and n > 1 then
        if n > 1e7 then
          comp = lt
        else
          local longest = 0
          for i = 1, n do
            local v = t[i]
            if type(v) == "string" and #v > longest then longest = #v end
          end
          if n * (m_log(n, 2) + 1) * (longest + 1) > BUDGET then comp = lt end
        end
      end
    end
    return rethrow(pcall(sort, t, comp))
  end

  -- A __len metamethod can claim a huge length and make the C loops run
  -- for hours without an instruction; do those shifts in Lua.
  local function has_len(t)
    local mt = d_getmetatable(t)
    return type(mt) == "table" and rawget(mt, "__len") ~= nil
  end

  table.insert = function(t, ...)
    if select("#", ...) ~= 2 or type(t) ~= "table" or not has_len(t) then
      return rethrow(pcall(insert, t, ...))
    end
    local pos, v = ...
    local e = #t + 1
    pos = optint(pos, 2, "insert", nil)
    if pos < 1 or pos > e then error("bad argument #2 to 'insert' (position out of bounds)", 2) end
    for i = e, pos + 1, -1 do t[i] = t[i - 1] end
    t[pos] = v
  end

  table.remove = function(t, pos)
    if pos == nil or type(t) ~= "table" or not has_len(t) then
      return rethrow(pcall(remove, t, pos))
    end
    local size = #t
    pos = optint(pos, 2, "remove", size)
    if pos ~= size and (pos < 1 or pos > size + 1) then
      error("bad argument #2 to 'remove' (position out of bounds)", 2)
    end
    local r = t[pos]
    while pos < size do t[pos] = t[pos + 1]; pos = pos + 1 end
    t[pos] = nil
    return r
  end

  table.move = function(a1, f, e, t, a2)
    local fi, ei, ti = m_tointeger(f), m_tointeger(e), m_tointeger(t)
    if not (fi and ei and ti) or ei < fi or ei - fi < MOVE_CHUNK then
      return rethrow(pcall(move, a1, f, e, t, a2))
    end
    local ok, err = pcall(move, a1, fi, fi - 1, ti, a2)   -- checks the table arguments
    if not ok then return rethrow(ok, err) end
    if a2 == nil then a2 = a1 end
    if not (fi > 0 or ei < m_maxinteger + fi) then
      error("bad argument #3 to 'move' (too many elements to move)", 2)
    end
    local n = ei - fi
    if ti > m_maxinteger - n then
      error("bad argument #4 to 'move' (destination wrap around)", 2)
    end
    if ti > ei or ti <= fi or not rawequal(a1, a2) then
      for s = fi, ei, MOVE_CHUNK do
        local last = m_min(s + MOVE_CHUNK - 1, ei)
        move(a1, s, last, ti + (s - fi), a2)
        charge(last - s + 1)
      end
    else
      for s = ei, fi, -MOVE_CHUNK do
        local first = m_max(s - MOVE_CHUNK + 1, fi)
        move(a1, first, s, ti + (first - fi), a2)
        charge(s - first + 1)
      end
    end
    return a2
  end
end

---------------------------------------------------------------------------
-- JSON values: markers, null, Lua -> JSON text
---------------------------------------------------------------------------
local AMT = { __metatable = false }
local OMT = { __metatable = false }
local NULL = cfg.null
d_setmetatable(NULL, {
  __metatable = false,
  __name = "json_null",
  __tostring = function() return "null" end,
  __index = function() error("attempt to index json_null", 2) end,
  __newindex = function() error("attempt to index json_null", 2) end,
})

local ESC = {}
for i = 0, 31 do ESC[s_char(i)] = s_format("\\u%04x", i) end
ESC["\b"], ESC["\f"], ESC["\n"], ESC["\r"], ESC["\t"] = "\\b", "\\f", "\\n", "\\r", "\\t"
ESC['"'], ESC["\\"] = '\\"', "\\\\"

-- Most strings need no escaping: a scan is far cheaper than a substitution.
local ESCAPED = '[%z\1-\31"\\]'
local function quote(s)
  if not s_find(s, ESCAPED) then return '"' .. s .. '"' end
  return '"' .. s_gsub(s, '[\0-\31"\\]', ESC) .. '"'
end

local function key_segment(k)
  if m_type(k) == "integer" then return "[" .. k .. "]" end
  if s_find(k, "^[A-Za-z_][A-Za-z0-9_]*$") then return "." .. k end
  return "[" .. quote(k) .. "]"
end

local FAIL = {}

-- Object keys repeat (config field names), so their quoted form is kept;
-- the table is emptied when it grows, which bounds it.
local quoted_keys, quoted_count = {}, 0
local function quote_key(k)
  local q = quoted_keys[k]
  if q == nil then
    q = quote(k) .. ":"
    if quoted_count >= 4096 then quoted_keys, quoted_count = {}, 0 end
    quoted_keys[k] = q
    quoted_count = quoted_count + 1
  end
  return q
end

-- The state of the walk in progress (a walk never re-enters: it reads
-- tables raw and calls no user code), reset by every walk.  Strings go into
-- the buffer as three pieces ('"', s, '"') and integers as numbers: the
-- final concat builds the text without an intermediate string per value.
local buf, nb, nodes, active, keys, failure
local w_root_path, w_root_name, w_root_tail, w_max_depth, w_max_nodes
-- Tables being walked (cycle detection), the path's keys and the key lists
-- per depth are reused from walk to walk: a walk that succeeds leaves them
-- empty (keys are overwritten depth by depth).
active, keys = {}, {}
local skeys_at, ikeys_at = {}, {}
-- Walked values since the last clock check: a walk polls the limits
-- itself, so it stays stoppable when no instruction hook runs (trusted
-- extraction of a flow runs without one).
local ticks = 0
local TICK = 1024

local function poll()
  ticks = 0
  local r = on_check()
  if r < 0 then trip(-r) elseif r > 0 then sethook(hook, "", r) end
end

local function root_path()
  if w_root_name == nil then return w_root_path end
  return w_root_path .. quote(w_root_name) .. w_root_tail
end

local function path_at(depth)
  local parts = { root_path() }
  for i = 1, depth do parts[i + 1] = key_segment(keys[i]) end
  return t_concat(parts)
end

local function fail(msg)
  failure = msg
  error(FAIL, 0)
end

local visit

local function visit_table(t, depth)
  local seen = active[t]
  if seen then
    fail("cyclic Lua table at " .. path_at(depth) ..
      "; the same table is already active at " .. path_at(seen))
  end
  active[t] = depth
  local mt = d_getmetatable(t)
  local skeys, ikeys = skeys_at[depth], ikeys_at[depth]
  if skeys == nil then
    skeys, ikeys = {}, {}
    skeys_at[depth], ikeys_at[depth] = skeys, ikeys
  end
  local ns, ni = 0, 0
  local room = w_max_nodes - nodes
  local k = next(t)
  while k ~= nil do
    if ns + ni >= room then
      fail("Lua-to-JSON maximum node count " .. w_max_nodes ..
        " exceeded while reading table at " .. path_at(depth) ..
        " (raise IRONFLOW_MAX_CONVERSION_NODES)")
    end
    local kt = type(k)
    if kt == "string" then
      ns = ns + 1; skeys[ns] = k
    elseif kt == "number" then
      if m_type(k) ~= "integer" or k < 1 then
        fail("invalid Lua array index " .. s_format(m_type(k) == "integer" and "%d" or "%.17g", k) ..
          " at " .. path_at(depth) .. "; indices must be positive consecutive integers starting at 1")
      end
      ni = ni + 1; ikeys[ni] = k
    else
      fail("unsupported Lua table key type " .. kt .. " at " .. path_at(depth) ..
        "; JSON keys must be strings or positive array indices")
    end
    k = next(t, k)
  end
  if ns > 1 then t_sort(skeys) end
  if ni > 1 then t_sort(ikeys) end
  if mt == AMT and ns > 0 then
    local here = path_at(depth)
    fail("table marked as a JSON array at " .. here .. " contains object field " .. here .. key_segment(skeys[1]))
  elseif mt == OMT and ni > 0 then
    local here = path_at(depth)
    fail("table marked as a JSON object at " .. here .. " contains array entry " .. here .. "[" .. ikeys[1] .. "]")
  elseif mt ~= AMT and mt ~= OMT and ns > 0 and ni > 0 then
    local here = path_at(depth)
    fail("mixed Lua table at " .. here .. " contains both array entry " .. here .. "[" .. ikeys[1] ..
      "] and object field " .. here .. key_segment(skeys[1]) ..
      "; use json_array(...) or json_object(...) with a uniform table")
  end
  local child = depth + 1
  if mt == AMT or ni > 0 then
    nb = nb + 1; buf[nb] = "["
    for i = 1, ni do
      local idx = ikeys[i]
      if idx ~= i then
        local here = path_at(depth)
        fail("sparse Lua array at " .. here .. ": expected index " .. i .. ", found " .. idx ..
          " at " .. here .. "[" .. idx .. "]")
      end
      if i > 1 then nb = nb + 1; buf[nb] = "," end
      keys[child] = i
      visit(rawget(t, i), child)
    end
    for i = 1, ni do ikeys[i] = nil end
    nb = nb + 1; buf[nb] = "]"
  else
    nb = nb + 1; buf[nb] = "{"
    for i = 1, ns do
      local key = skeys[i]
      local q = quoted_keys[key]
      if q == nil then
        if not u_len(key) then
          fail("object key in Lua table at " .. path_at(depth) .. " is not valid UTF-8")
        end
        q = quote_key(key)
      end
      if i > 1 then nb = nb + 1; buf[nb] = "," end
      nb = nb + 1; buf[nb] = q
      keys[child] = key
      visit(rawget(t, key), child)
    end
    for i = 1, ns do skeys[i] = nil end
    nb = nb + 1; buf[nb] = "}"
  end
  active[t] = nil
end

visit = function(v, depth)
  if depth > w_max_depth then
    fail("Lua-to-JSON maximum depth " .. w_max_depth .. " exceeded at " .. path_at(depth) ..
      " (raise IRONFLOW_MAX_CONVERSION_DEPTH)")
  end
  if nodes >= w_max_nodes then
    fail("Lua-to-JSON maximum node count " .. w_max_nodes .. " exceeded at " .. path_at(depth) ..
      " (raise IRONFLOW_MAX_CONVERSION_NODES)")
  end
  nodes = nodes + 1
  ticks = ticks + 1
  if ticks >= TICK then poll() end
  if v == nil or rawequal(v, NULL) then
    nb = nb + 1; buf[nb] = "null"
    return
  end
  local t = type(v)
  if t == "string" then
    if not u_len(v) then fail("Lua string at " .. path_at(depth) .. " is not valid UTF-8") end
    if s_find(v, ESCAPED) then
      nb = nb + 1; buf[nb] = quote(v)
    else
      buf[nb + 1] = '"'; buf[nb + 2] = v; buf[nb + 3] = '"'
      nb = nb + 3
    end
  elseif t == "number" then
    if m_type(v) == "integer" then
      nb = nb + 1; buf[nb] = v
    else
      if v ~= v or v == m_huge or v == -m_huge then
        fail("non-finite Lua number at " .. path_at(depth) .. " is not valid JSON")
      end
      local text = s_format("%.17g", v)
      if not s_find(text, "[.eE]") then text = text .. ".0" end
      nb = nb + 1; buf[nb] = text
    end
  elseif t == "boolean" then
    nb = nb + 1; buf[nb] = v and "true" or "false"
  elseif t == "table" then
    visit_table(v, depth)
  else
    fail("unsupported Lua " .. t .. " value at " .. path_at(depth) .. "; expected a JSON-compatible value")
  end
end

-- Append the JSON text of `root` to `out` after index `n`: returns true and
-- the new last index, or false and a message (a limit trip's message too).
-- The path of an error is `path .. quote(name) .. tail` (`name` nil: `path`),
-- built only when there is an error.
local function walk(out, n, root, path, name, tail, max_depth, max_nodes)
  buf, nb, nodes, failure = out, n, 0, nil
  w_root_path, w_root_name, w_root_tail = path, name, tail
  w_max_depth, w_max_nodes = max_depth, max_nodes
  local ok, err = pcall(visit, root, 0)
  local last, message = nb, failure
  buf, failure = nil, nil  -- hold no output between walks
  if ok then return true, last end
  -- A failed walk may leave tables marked active and key lists partly
  -- filled: the next one starts afresh.
  active, keys, skeys_at, ikeys_at = {}, {}, {}, {}
  if err == FAIL then return false, message end
  return false, tostring(err)
end

-- Convert `root` to compact JSON text (keys unsorted; Python canonicalises).
-- Returns true, text  or  false, message.  Paths are only built on error.
local function to_json(root, root_path, max_depth, max_nodes)
  local out = {}
  local ok, last = walk(out, 0, root, root_path, nil, nil, max_depth, max_nodes)
  if not ok then return false, last end
  return true, t_concat(out, "", 1, last)
end

P.to_json = to_json
P.amt, P.omt, P.null = AMT, OMT, NULL

---------------------------------------------------------------------------
-- The user environment
---------------------------------------------------------------------------
-- `U` holds what every environment shares: functions and constants only
-- (nothing user code could mutate).  The library tables are templates that
-- `new_env` copies for each execution.
local U = {}
for _, name in pairs({ "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
  "rawequal", "rawget", "rawlen", "rawset", "select", "tonumber", "tostring", "type" }) do
  U[name] = G[name]
end
U.setmetatable = safe.setmetatable
U.xpcall = safe.xpcall
U._VERSION = G._VERSION
local LIBS = { string = string, table = table, math = math, utf8 = utf8 }
local m_randomseed = math.randomseed

-- Output of an inline attempt (print lines and log calls, in order) is held
-- back until Python accepts the attempt: a discarded attempt leaves no trace.
local out_buf, out_n = false, 0
local function single(h)
  return function(...)
    disarm()
    return unwrap(h(...))
  end
end

U.env = single(H.env)
U.uuid4 = single(H.uuid4)
U.now_rfc3339 = single(H.now_rfc3339)
U.now_unix_ms = single(H.now_unix_ms)
U.json_null = NULL

local h_json_decode, h_json_canonical, h_log = H.json_decode, H.json_canonical, H.log
local LIMITS = { depth = cfg.conv_depth, nodes = cfg.conv_nodes }

U.json_parse = function(s)
  if type(s) == "number" then s = tostring(s) end
  if type(s) ~= "string" then
    error("json_parse failed: expected a string, got " .. (s == nil and "nil" or type(s)), 2)
  end
  disarm()
  return unwrap(h_json_decode(s))
end

U.json_stringify = function(v)
  local ok, text = to_json(v, "$", LIMITS.depth, LIMITS.nodes)
  if not ok then error(text, 2) end
  disarm()
  return unwrap(h_json_canonical(text))
end

U.json_array = function(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'json_array' (table expected, got " .. (t == nil and "no value" or type(t)) .. ")", 2)
  end
  d_setmetatable(t, AMT)
  return t
end

U.json_object = function(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'json_object' (table expected, got " .. (t == nil and "no value" or type(t)) .. ")", 2)
  end
  d_setmetatable(t, OMT)
  return t
end

local LEVELS = { trace = true, debug = true, info = true, warn = true, error = true }
U.log = function(...)
  local n = select("#", ...)
  if n == 0 then error("log() requires at least one argument", 2) end
  local first = ...
  local start, level = 1, "info"
  if type(first) == "string" then
    local lower = s_lower(first)
    if LEVELS[lower] then start, level = 2, lower end
  end
  -- (kind, value) pairs: s=string, n=number, b=boolean, z=nil, j=JSON text
  local parts, np = {}, 0
  for i = start, n do
    local v = select(i, ...)
    local t = type(v)
    if v == nil then
      parts[np + 1], parts[np + 2] = "z", "nil"
    elseif rawequal(v, NULL) then
      parts[np + 1], parts[np + 2] = "z", "null"
    elseif t == "string" or t == "number" or t == "boolean" then
      parts[np + 1], parts[np + 2] = s_sub(t, 1, 1), v
    else
      local ok, text = to_json(v, "$", LIMITS.depth, LIMITS.nodes)
      if not ok then error(text, 2) end
      parts[np + 1], parts[np + 2] = "j", text
    end
    np = np + 2
  end
  if out_buf then
    out_n = out_n + 1
    out_buf[out_n] = { level, parts, np }
    return
  end
  disarm()
  return unwrap(h_log(level, t_unpack(parts, 1, np)))
end

-- `print` writes to the run's log at level info, like `log()`, never to
-- stdout: stdout belongs to the CLI's result (`--format json`).
U.print = function(...)
  local args = t_pack(...)
  local parts = {}
  for i = 1, args.n do parts[i] = tostring(args[i]) end
  local text = t_concat(parts, "\t", 1, args.n)
  if out_buf then
    out_n = out_n + 1
    out_buf[out_n] = { "info", { "s", text }, 2 }
    return
  end
  disarm()
  return unwrap(h_log("info", "s", text))
end

if cfg.runtime then
  U.base64_encode = function(s)
    if type(s) == "number" then s = tostring(s) end
    if type(s) ~= "string" then
      error("bad argument #1 to 'base64_encode' (string expected, got " .. (s == nil and "no value" or type(s)) .. ")", 2)
    end
    disarm()
    return unwrap(H.base64_encode(s))
  end
  U.base64_decode = function(s)
    if type(s) == "number" then s = tostring(s) end
    if type(s) ~= "string" then
      error("base64_decode failed: expected a string, got " .. (s == nil and "nil" or type(s)), 2)
    end
    disarm()
    return unwrap(H.base64_decode(s))
  end
end

-- getmetatable("") shows a read-only stand-in for the string metatable;
-- both the stand-in and the library behind `("x"):f()` belong to one
-- environment.
local smt = getmetatable("")
local function smt_newindex() error("attempt to modify the string metatable", 2) end
local function show_string_library(lib)
  smt.__index = lib
  smt.__metatable = setmetatable({}, {
    __index = { __index = lib },
    __newindex = smt_newindex,
    __metatable = false,
  })
end

-- A function returning a new copy of `template` (whose contents are final
-- by now): one table constructor instead of a `next` loop, so building an
-- environment costs a few microseconds.
local function copier(template)
  local keys, values, src = {}, {}, { "local V = ... return function() return {" }
  for k in next, template do keys[#keys + 1] = k end
  t_sort(keys)
  for i = 1, #keys do
    values[i] = template[keys[i]]
    src[i + 1] = s_format("[%q] = V[%d],", keys[i], i)
  end
  src[#src + 1] = "} end"
  return load(t_concat(src), "=env", "t", {})(values)
end

local new_globals = copier(U)
local new_libs = {}
for name, lib in next, LIBS do new_libs[name] = copier(lib) end
local new_string, new_table, new_math, new_utf8 =
  new_libs.string, new_libs.table, new_libs.math, new_libs.utf8

-- A brand-new user environment: fresh globals, fresh copies of the library
-- tables, its own string metatable stand-in and random sequence.
local function new_env(seed1, seed2, buffered)
  local E = new_globals()
  E.string, E.table, E.math, E.utf8 = new_string(), new_table(), new_math(), new_utf8()
  E._G = E
  show_string_library(E.string)
  if buffered then
    out_buf, out_n = {}, 0
  else
    out_buf, out_n = false, 0
  end
  if seed1 then m_randomseed(seed1, seed2) end
  return E
end

local first_env = new_env(false)

---------------------------------------------------------------------------
-- Private entry points
---------------------------------------------------------------------------
local function finish(...)
  disarm()
  return ...
end

-- Run user code: memory armed, errors caught, results returned to Python.
P.call = function(f, ...)
  arm()
  return finish(pcall(f, ...))
end

P.load = function(chunk, name, mode, env)
  return load(chunk, name, mode, env)
end

-- A new execution in this state: limits re-armed, a fresh environment.
P.begin = function(interval, q, op_limit, seed1, seed2, buffered)
  work, quantum, slice_op = 0, q, op_limit
  pc_cache, pc_gcache, pc_count = {}, {}, 0   -- holds patterns of the last execution
  sethook(hook, "", interval)
  return new_env(seed1, seed2, buffered)
end

-- The execution is over: emit (or drop) held-back output and let go of
-- its environment, so the full GC (`collect`) frees everything it made.
P.finish = function(emit, collect)
  local buf, n = out_buf, out_n
  out_buf, out_n = false, 0
  show_string_library(string)
  if emit and buf then
    for i = 1, n do
      local e = buf[i]
      h_log(e[1], t_unpack(e[2], 1, e[3]))
    end
  end
  buf = nil
  if collect then collectgarbage("collect") end
end

P.env = first_env
P.collect = collectgarbage
P.setmetatable = d_setmetatable

-- What the flow loader's DSL chunk needs (it runs before any user code).
P.loader = {
  getinfo = getinfo,
  getupvalue = getupvalue,
  dump = s_dump,
  unwrap = unwrap,
  hostcheck = hostcheck,
  disarm = disarm,
  arm = arm,
  env = first_env,
  -- Extraction (dsl.lua) is trusted code, except where it reads a table
  -- with a metatable: there user code may run, and is counted.
  getmetatable = d_getmetatable,
  rawlen = rawlen,
  concat = t_concat,
  -- Trusted code runs without the hook (on_mode gives 0), user code with it.
  -- The collector runs for user code only: what the extraction allocates
  -- is the flow's JSON text it returns (the memory ceiling still holds: an
  -- allocation that would pass it runs an emergency collection first).
  user_code = function(on)
    local r = on_mode(on)
    if r > 0 then sethook(hook, "", r) else sethook() end
    collectgarbage(on and "restart" or "stop")
  end,
  collect = collectgarbage,
  json_into = walk,
  poll = poll,
  quote = quote,
  utf8_len = u_len,
  find = s_find,
  escaped = ESCAPED,
  json_float = function(v)
    if v ~= v or v == m_huge or v == -m_huge then return nil end
    local text = s_format("%.17g", v)
    if not s_find(text, "[.eE]") then text = text .. ".0" end
    return text
  end,
}

-- The real globals table is emptied: lupa looks up `debug.traceback` there
-- when Python calls into Lua, and nothing else needs it.
local names = {}
for k in next, G do names[#names + 1] = k end
for i = 1, #names do G[names[i]] = nil end
-- C functions called by wrappers are found here by name for their messages.
originals.setmetatable, originals.xpcall = setmetatable, xpcall
for name, fn in next, originals do G[name] = fn end

local out = {}
for name in originals.gmatch(private_names, "[^,]+") do out[#out + 1] = P[name] end
return t_unpack(out)
