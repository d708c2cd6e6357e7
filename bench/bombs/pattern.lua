-- Pattern bomb (issue 13): a 500 000-byte character class matched at every
-- one of 5000 positions. Stopped by the Lua time budget (run with
-- IRONFLOW_LUA_MAX_SECONDS=2); the step's own timeout is 2 s too.
local flow = Flow.new("pattern_bomb")
flow:step("find", function()
  local s = string.rep("a", 5000)
  local class = "[" .. string.rep("b-c", 500000) .. "]*x"
  local n = 0
  for i = 1, 1000 do
    if string.find(s, class) then n = n + 1 end
    n = n + select(2, string.gsub(s, class, "y"))
  end
  return { n = n }
end):timeout(2)
return flow
