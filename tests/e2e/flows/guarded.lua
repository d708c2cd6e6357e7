-- upstream example 03-control-flow/step_if: guards named _if_<name>; a later phase wins log_message.
local flow = Flow.new("guarded")
flow:step("done", nodes.log({ message = "Processing complete" }))
flow:step_if("ctx.vip", "greet_vip", nodes.template_render({
    template = "Welcome back, VIP ${ctx.name}!", output_key = "greeting",
}))
flow:step_if("ctx.score >= 50", "bonus", nodes.log({ message = "Bonus unlocked! Score: ${ctx.score}" }))
return flow
