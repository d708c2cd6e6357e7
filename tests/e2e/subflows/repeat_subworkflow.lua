-- Counts to ctx.target by re-running a child with explicit carried state.
local flow = Flow.new("repeat_subworkflow")

flow:step("seed", function()
    return { start = { value = 0 }, target = 3 }
end)

flow:step("count", nodes.repeat_subworkflow({
    flow = "repeat_counter_subworkflow.lua",
    input = { repeat_state = "start", target = "target" },
    max_iterations = 5,
    output_key = "counter"
})):depends_on("seed")

flow:step("report", nodes.log({
    message = "Counter reached ${ctx.counter_state.value} after ${ctx.counter_iterations} iterations"
})):depends_on("count")

return flow
