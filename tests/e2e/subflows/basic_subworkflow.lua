-- Calls greet.lua with one mapped key; the child's keys merge into this run.
local flow = Flow.new("basic_subworkflow")

flow:step("pick_name", nodes.code({
    source = function(ctx)
        return { name = "IronFlow" }
    end
}))

flow:step("greet_child", nodes.subworkflow({
    flow = "greet.lua",
    input = { name = "name" }
})):depends_on("pick_name")

flow:step("report", nodes.log({
    message = "Child said: ${ctx.greeting}"
})):depends_on("greet_child")

return flow
