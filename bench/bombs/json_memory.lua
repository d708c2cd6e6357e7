-- Memory bomb through json_parse: each call builds a 10 MB Lua string.
local flow = Flow.new("json_memory_bomb")
flow:step("hoard", function()
  local doc = '"' .. string.rep("a", 10000000) .. '"'
  local kept = {}
  for i = 1, 30 do kept[i] = json_parse(doc) end
  return { kept = #kept }
end)
return flow
