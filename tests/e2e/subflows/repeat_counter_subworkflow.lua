-- Child of repeat_subworkflow.lua: one counting step per iteration.
local flow = Flow.new("repeat_counter_subworkflow")

flow:step("tick", function(ctx)
    local state = ctx.repeat_state or { value = 0 }
    local value = state.value + 1
    return {
        repeat_next_state = { value = value },
        repeat_done = value >= ctx.target,
        current_value = value,
        observed_iteration = ctx.repeat_iteration
    }
end)

return flow
