-- The smallest useful flow: render a greeting from the context, then log it.
--   uv run ironflow run examples/hello.lua --context '{"user_name": "Ada"}'
local flow = Flow.new("hello")

flow:step("greet", nodes.template_render({
    template = "Welcome, ${ctx.user_name}! Today is a great day.",
    output_key = "greeting",
}))

flow:step("announce", nodes.log({
    message = "Rendered greeting: ${ctx.greeting}",
})):depends_on("greet")

return flow
