-- Two greet.lua children at once; "Alice"/"Bob" are not context keys, so
-- they reach the children as literal strings (PS-3).
local flow = Flow.new("parallel_subworkflows")

flow:step("fan_out", nodes.parallel_subworkflows({
    flows = {
        { flow = "greet.lua", input = { name = "Alice" }, output_key = "greeting_a" },
        { flow = "greet.lua", input = { name = "Bob" }, output_key = "greeting_b" }
    },
    on_error = "ignore"
}))

flow:step("tally", function(ctx)
    return {
        total = ctx.parallel_results_count,
        all_ok = ctx.parallel_results_all_succeeded
    }
end):depends_on("fan_out")

return flow
