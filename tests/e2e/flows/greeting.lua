-- upstream example 01-basics/hello_world: render, then log the rendered text.
local flow = Flow.new("greeting")
flow:step("render", nodes.template_render({
    template = "Welcome, ${ctx.user_name}! Today is a great day.",
    output_key = "greeting",
}))
flow:step("say", nodes.log({ message = "Rendered greeting: ${ctx.greeting}" }))
    :depends_on("render")
return flow
