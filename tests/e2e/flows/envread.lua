-- upstream example 01-basics/environment_variables: env() runs at load time.
local app = env("APP_NAME") or "NOT SET"
local secret = env("API_KEY") and "SET" or "NOT SET"
local flow = Flow.new("envread")
flow:step("info", nodes.template_render({
    template = "Connecting to ${ctx.db_url}", output_key = "connection_info",
}))
flow:step("show", nodes.log({ message = "APP_NAME=" .. app .. ", API_KEY=" .. secret }))
return flow
