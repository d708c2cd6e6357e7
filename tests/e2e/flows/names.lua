-- upstream example 01-basics/context_passing: two context values into one string.
local flow = Flow.new("names")
flow:step("full", nodes.template_render({
    template = "Hello, ${ctx.first_name} ${ctx.last_name}!",
    output_key = "greeting",
}))
flow:step("report", nodes.log({ message = "Generated: ${ctx.greeting}", level = "info" }))
    :depends_on("full")
return flow
