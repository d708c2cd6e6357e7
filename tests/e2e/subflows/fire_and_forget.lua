-- Starts greet.lua in the background and carries on without its result.
local flow = Flow.new("fire_and_forget")

flow:step("pick_name", nodes.code({
    source = function(ctx)
        return { name = ctx.name or "Background" }
    end
}))

flow:step("spawn", nodes.subworkflow({
    flow = "greet.lua",
    wait = false,
    input = { name = "name" }
})):depends_on("pick_name")

flow:step("carry_on", nodes.log({
    message = "Started ${ctx.subworkflow_name} in the background"
})):depends_on("spawn")

return flow
