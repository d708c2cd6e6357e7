-- Subworkflow fan-out bomb (issue 13): the flow starts three parallel copies
-- of itself. Stopped by IRONFLOW_MAX_SUBWORKFLOW_DEPTH (8) and
-- IRONFLOW_MAX_SUBWORKFLOW_RUNS (1024) per root run, with at most
-- IRONFLOW_MAX_CONCURRENT_SUBWORKFLOWS child subtrees running at once.
local flow = Flow.new("fanout_bomb")
flow:step("fan", nodes.parallel_subworkflows({
  flows = { { flow = "fanout.lua" }, { flow = "fanout.lua" }, { flow = "fanout.lua" } },
  on_error = "ignore",
}))
return flow
