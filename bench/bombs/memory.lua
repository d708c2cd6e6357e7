-- Memory bomb (issue 13): host results kept in Lua. Thirteen 40 MB
-- base64_decode results would hold 520 MB; the 128 MiB Lua ceiling refuses
-- the first one that does not fit, before it is built.
local flow = Flow.new("memory_bomb")
flow:step("hoard", function()
  local encoded = string.rep("QUFB", 13333334)   -- 53 MB of base64, 40 MB decoded
  local kept = {}
  for i = 1, 13 do kept[i] = base64_decode(encoded) end
  return { kept = #kept }
end)
return flow
