-- IronFlow flow DSL (semantics.md#steps to #node-factories): Flow.new, flow:step, flow:step_if, the
-- step builders and the `nodes.<type>` factories, plus `extract`, which reads
-- the returned flow table back for Python.  Runs in the loader state after
-- the sandbox prelude and before the flow file; everything it needs comes in
-- as arguments (the real globals table is empty by now).
local L, sign, record, node_names, to_json = ...

local U = L.env
local getinfo, getupvalue, dump = L.getinfo, L.getupvalue, L.dump
local hostcheck, disarm = L.hostcheck, L.disarm
local type, error, tostring, tonumber = U.type, U.error, U.tostring, U.tonumber
local select, rawget = U.select, U.rawget
local format, gmatch = U.string.format, U.string.gmatch
local m_tointeger = U.math.tointeger
local json_array = U.json_array

local UPVALUE_MESSAGE = "Lua function handler at line %d captures %d outer local value(s), "
  .. "but captured upvalues cannot survive handler serialization; move constants inside "
  .. "the handler or pass values through ctx"

local function typename(v)
  if v == nil then return "no value" end
  return type(v)
end

-- Like mlua's String conversion: strings, and numbers in their string form.
local function as_string(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  return nil
end

local function string_arg(v, argn, fname)
  local s = as_string(v)
  if s == nil then
    error(format("bad argument #%d to '%s' (string expected, got %s)", argn, fname, typename(v)), 3)
  end
  return s
end

local function number_arg(v, argn, fname)
  local n = tonumber(v)
  if n == nil then
    error(format("bad argument #%d to '%s' (number expected, got %s)", argn, fname, typename(v)), 3)
  end
  return n
end

-- DSL-52/53: reject captured locals, dump with debug info, sign the bytecode.
-- `level` points at the flow code that asked for the serialisation.
local function serialize(fn, level)
  local info = getinfo(fn, "Su")
  if info.what == "C" then
    error("Lua function handler cannot be serialized: it is a built-in (C) function", level)
  end
  local captured = 0
  for i = 1, info.nups do
    if getupvalue(fn, i) ~= "_ENV" then captured = captured + 1 end
  end
  if captured > 0 then
    error(format(UPVALUE_MESSAGE, info.linedefined, captured), level)
  end
  disarm()
  if record then hostcheck(level + 1, record(info.linedefined, info.lastlinedefined)) end
  disarm()
  return hostcheck(level + 1, sign(dump(fn)))
end

-- A step handler: a node config table (with _node_type) or a function.
local function handler_config(handler, fname)
  local t = type(handler)
  if t == "table" then return handler end
  if t == "function" then
    return { _node_type = "code", bytecode_b64 = serialize(handler, 4) }
  end
  error(fname .. "() expects a node config table or a function", 3)
end

local function node_type_of(config, fname)
  local node_type = as_string(config._node_type)
  if node_type == nil then
    error(fname .. "() node config table has no _node_type (create it with nodes.<type>{...})", 3)
  end
  return node_type
end

local function new_step(name, node_type, config, line)
  return {
    name = name, node_type = node_type, config = config, dependencies = {},
    max_retries = 0, backoff_s = 1.0, line = line, bad_dependencies = {},
  }
end

local function caller_line()
  local info = getinfo(3, "l")
  return info and info.currentline or nil
end

-- Builder methods (DSL-30..34).  `deps_of` selects the table that
-- depends_on appends to: the step itself, or the guard of a step_if.
-- A dependency that is not a string (typically the builder instead of its
-- name) is recorded with its line and reported by the loader, with every
-- other problem of the flow, instead of being dropped.
local function describe_dep(dep)
  if type(dep) == "table" and type(rawget(dep, "_step")) == "table" then
    local name = as_string(rawget(dep._step, "name"))
    if name ~= nil then return format("the builder of step '%s'", name) end
  end
  if dep == nil then return "nil (an undefined variable?)" end
  return "a " .. type(dep) .. " value"
end

local function append_deps(step, deps, line, ...)
  for i = 1, select("#", ...) do
    local dep = select(i, ...)
    if type(dep) == "string" then
      deps[#deps + 1] = dep
    else
      local bad = step.bad_dependencies
      bad[#bad + 1] = { what = describe_dep(dep), line = line }
    end
  end
end

local function make_builder(step, guard)
  local builder = { _step = step, _guard_step = guard }
  builder.depends_on = function(self, ...)
    local info = getinfo(2, "l")
    append_deps(step, (guard or step).dependencies, info and info.currentline or nil, ...)
    return self
  end
  builder.retries = function(self, max, backoff)
    local n = m_tointeger(max)
    if n == nil or n < 0 or n > 0xFFFFFFFF then
      error(format("bad argument #1 to 'retries' (expected a non-negative whole number, got %s)",
        type(max) == "number" and tostring(max) or typename(max)), 2)
    end
    step.max_retries = n
    if backoff ~= nil then step.backoff_s = number_arg(backoff, 2, "retries") + 0.0 end
    return self
  end
  builder.timeout = function(self, seconds)
    step.timeout_s = number_arg(seconds, 1, "timeout") + 0.0
    return self
  end
  if guard == nil then
    builder.route = function(self, name)
      step.route = string_arg(name, 1, "route")
      return self
    end
  end
  builder.on_error = function(self, name)
    step.on_error = string_arg(name, 1, "on_error")
    return self
  end
  return builder
end

local function append(flow, step)
  local count = flow._step_count + 1
  flow._steps[count] = step
  flow._step_count = count
end

local function flow_arg(flow, fname)
  if type(flow) ~= "table" then
    error(format("bad argument #1 to '%s' (flow table expected, got %s; call it as flow:%s(...))",
      fname, typename(flow), fname), 3)
  end
end

local function step_method(flow, name, handler)
  flow_arg(flow, "step")
  name = string_arg(name, 1, "step")
  local config = handler_config(handler, "step")
  local step = new_step(name, node_type_of(config, "step"), config, caller_line())
  append(flow, step)
  return make_builder(step, nil)
end

local function step_if_method(flow, condition, name, handler)
  flow_arg(flow, "step_if")
  condition = string_arg(condition, 1, "step_if")
  name = string_arg(name, 2, "step_if")
  local line = caller_line()
  local guard_name = "_if_" .. name
  local guard = new_step(guard_name, "if_node", { _node_type = "if_node", condition = condition }, line)
  append(flow, guard)
  local config = handler_config(handler, "step_if")
  local step = new_step(name, node_type_of(config, "step_if"), config, line)
  step.dependencies[1] = guard_name
  step.route = "true"
  append(flow, step)
  return make_builder(step, guard)
end

local Flow = {}
Flow.new = function(name)
  name = string_arg(name, 1, "new")
  return {
    _name = name, _steps = {}, _step_count = 0,
    step = step_method, step_if = step_if_method,
  }
end

-- A factory sets `_node_type` on its config table (DSL-50).  A name no plugin
-- registered still gets a factory: the step records the type and the loader
-- reports it with the step, the line and a hint (installed? typo? plugin
-- failed?) instead of Lua's "attempt to call a nil value".
local function factory(node_type)
  return function(config)
    if config == nil then
      config = {}
    elseif type(config) ~= "table" then
      error(format("bad argument #1 to '%s' (table expected, got %s)", node_type, typename(config)), 2)
    end
    config._node_type = node_type
    if node_type == "code" and type(config.source) == "function" then
      config.bytecode_b64 = serialize(config.source, 3)
      config.source = nil
    elseif node_type == "foreach" and type(config.transform) == "function" then
      config.transform_bytecode_b64 = serialize(config.transform, 3)
      config.transform = nil
    end
    return config
  end
end

local nodes = {}
for node_type in gmatch(node_names, "[^,]+") do
  nodes[node_type] = factory(node_type)
end
U.setmetatable(nodes, {
  __index = function(_, key)
    if type(key) == "string" then return factory(key) end
    return nil
  end,
  __metatable = false,
})

U.Flow = Flow
U.nodes = nodes

-- A flow whose evaluation asks for the clock, randomness or a UUID, or
-- writes output, is not deterministic: a cache of loaded flows (the API's)
-- must evaluate it again.  env() is deterministic: the environment of a
-- loader does not change.  The wrappers tail-call, so error levels hold.
local deterministic = true
local function impure(fn)
  return function(...)
    deterministic = false
    return fn(...)
  end
end
local IMPURE = { "uuid4", "now_rfc3339", "now_unix_ms", "print", "log" }
for i = 1, #IMPURE do
  local name = IMPURE[i]
  if U[name] ~= nil then U[name] = impure(U[name]) end
end
U.math.random = impure(U.math.random)

-- Read the returned flow table by fields (DSL-3) into JSON text, in one pass:
-- { name, steps = [ {name, dependencies, config = {...}, node_type, ...} ] }
-- (`max_retries` and `backoff_s` only when they differ from 0 and 1.0).
-- This is trusted code: it runs without the instruction hook (which slows
-- every VM instruction down, whatever its interval) and without the
-- collector (the flow is all alive), and is not counted; it
-- polls the clock and the cancel flags itself every few hundred steps and
-- values.  A table with a metatable may run user code when read (__index,
-- __len): those reads run under the hook, counted against the same
-- instruction budget as the flow file.
local user_code, json_into, poll = L.user_code, L.json_into, L.poll
local json_quote, u_len, s_find, ESCAPED = L.quote, L.utf8_len, L.find, L.escaped
local json_float, collect = L.json_float, L.collect
local d_getmetatable, rawlen, t_concat = L.getmetatable, L.rawlen, L.concat

local function get(t, k)
  if d_getmetatable(t) == nil then return rawget(t, k) end
  user_code(true)
  local v = t[k]
  user_code(false)
  return v
end

local function len(t)
  if d_getmetatable(t) == nil then return rawlen(t) end
  user_code(true)
  local n = #t
  user_code(false)
  return n
end

-- Append string `s` as JSON to `out` after index `n`; returns the new index.
-- `what` is a format for the error message, built only when it is needed.
local function put_string(out, n, s, what, a, b)
  if not u_len(s) then error(format(what, a, b) .. " is not valid UTF-8", 0) end
  if s_find(s, ESCAPED) then
    out[n + 1] = json_quote(s)
    return n + 1
  end
  out[n + 1], out[n + 2], out[n + 3] = '"', s, '"'
  return n + 3
end

local function put_float(out, n, v, i, field)
  local text = json_float(v)
  if text == nil then
    error(format("non-finite Lua number at $.steps[%d].%s is not valid JSON", i, field), 0)
  end
  out[n + 1] = text
  return n + 1
end

local STEPS_PER_POLL = 256

local function extract(flow, max_depth, max_nodes)
  user_code(false)
  if type(flow) ~= "table" then
    error("the flow file must return the flow created by Flow.new (it returned "
      .. (flow == nil and "nothing" or "a " .. type(flow) .. " value") .. ")", 0)
  end
  local name = as_string(get(flow, "_name"))
  if name == nil then error("Flow must have a name: _name is " .. typename(get(flow, "_name")), 0) end
  local steps = get(flow, "_steps")
  if type(steps) ~= "table" then error("Flow must have steps: _steps is " .. typename(steps), 0) end
  local raw_count = get(flow, "_step_count")
  local count = m_tointeger(raw_count)
  if count == nil or count < 0 then
    error("Flow has an invalid step count: " .. tostring(raw_count), 0)
  end
  local out = { '{"name":' }
  local n = put_string(out, 1, name, "Flow name")
  n = n + 1; out[n] = ',"steps":['
  for i = 1, count do
    if i % STEPS_PER_POLL == 0 then poll() end
    local step = get(steps, i)
    if type(step) ~= "table" then
      error(format("Flow step %d is not a table (it is %s)", i, typename(step)), 0)
    end
    -- A plain table (the DSL's own) is read directly; one with a metatable
    -- through `get`, which counts the user code its metamethods run.
    local plain = d_getmetatable(step) == nil
    local step_name = as_string(plain and step.name or get(step, "name"))
    if step_name == nil then error(format("Flow step %d has no name", i), 0) end
    n = n + 1; out[n] = i > 1 and ',{"name":' or '{"name":'
    n = put_string(out, n, step_name, "Flow step %d name", i)
    local node_type = as_string(plain and step.node_type or get(step, "node_type"))
    if node_type == nil then error(format("Step '%s' has no node type", step_name), 0) end
    local dep_table = plain and step.dependencies or get(step, "dependencies")
    if type(dep_table) ~= "table" then
      error(format("Step '%s' dependencies must be a table", step_name), 0)
    end
    n = n + 1; out[n] = ',"dependencies":['
    local plain_deps = d_getmetatable(dep_table) == nil
    for j = 1, plain_deps and #dep_table or len(dep_table) do
      local dep = as_string(plain_deps and dep_table[j] or get(dep_table, j))
      if dep == nil then error(format("Step '%s' has a dependency that is not a string", step_name), 0) end
      if j > 1 then n = n + 1; out[n] = "," end
      n = put_string(out, n, dep, "Step '%s' dependency %d", step_name, j)
    end
    n = n + 1; out[n] = "]"
    local bad_table = rawget(step, "bad_dependencies")
    if type(bad_table) == "table" and #bad_table > 0 then
      n = n + 1; out[n] = ',"bad_dependencies":['
      for j = 1, #bad_table do
        local entry = bad_table[j]
        local what = as_string(entry.what) or "a value"
        local bad_line = m_tointeger(entry.line)
        n = n + 1; out[n] = j > 1 and ',{"what":' or '{"what":'
        n = put_string(out, n, what, "Step '%s' dependency", step_name)
        if bad_line then
          n = n + 1; out[n] = ',"line":'
          n = n + 1; out[n] = bad_line
        end
        n = n + 1; out[n] = "}"
      end
      n = n + 1; out[n] = "]"
    end
    local config = plain and step.config or get(step, "config")
    if type(config) ~= "table" then error(format("Step '%s' config must be a table", step_name), 0) end
    n = n + 1; out[n] = ',"config":'
    local ok, last = json_into(out, n, config, "$.steps[", step_name, "].config", max_depth, max_nodes)
    if not ok then error(last, 0) end
    n = last
    local retries = m_tointeger(plain and step.max_retries or get(step, "max_retries"))
    if retries == nil or retries < 0 or retries > 0xFFFFFFFF then retries = 0 end
    local backoff = tonumber(plain and step.backoff_s or get(step, "backoff_s"))
    local timeout = tonumber(plain and step.timeout_s or get(step, "timeout_s"))
    local route = as_string(plain and step.route or get(step, "route"))
    local on_error = as_string(plain and step.on_error or get(step, "on_error"))
    local line = m_tointeger(rawget(step, "line"))
    n = n + 1; out[n] = ',"node_type":'
    n = put_string(out, n, node_type, "Step '%s' node type", step_name)
    if retries ~= 0 then
      n = n + 1; out[n] = ',"max_retries":'
      n = n + 1; out[n] = retries
    end
    if backoff and backoff ~= 1 then
      n = n + 1; out[n] = ',"backoff_s":'
      n = put_float(out, n, backoff + 0.0, i, "backoff_s")
    end
    if timeout then
      n = n + 1; out[n] = ',"timeout_s":'
      n = put_float(out, n, timeout + 0.0, i, "timeout_s")
    end
    if route then
      n = n + 1; out[n] = ',"route":'
      n = put_string(out, n, route, "Step '%s' route", step_name)
    end
    if on_error then
      n = n + 1; out[n] = ',"on_error":'
      n = put_string(out, n, on_error, "Step '%s' on_error", step_name)
    end
    if line then
      n = n + 1; out[n] = ',"line":'
      n = n + 1; out[n] = line
    end
    n = n + 1; out[n] = "}"
  end
  n = n + 1; out[n] = "]}"
  local text = t_concat(out, "", 1, n)
  collect("restart")
  return text, deterministic
end

return extract
