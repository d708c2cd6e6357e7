-- upstream example 03-control-flow/switch_routing: cases with a default route.
local flow = Flow.new("switch")
flow:step("check_tier", nodes.switch_node({
    value = "ctx.tier",
    cases = { pro = "pro", enterprise = "enterprise" },
    default = "free",
}))
flow:step("handle_pro", nodes.template_render({ template = "pro", output_key = "handled" }))
    :depends_on("check_tier"):route("pro")
flow:step("handle_enterprise", nodes.template_render({ template = "enterprise", output_key = "handled" }))
    :depends_on("check_tier"):route("enterprise")
flow:step("free_path", nodes.template_render({ template = "free", output_key = "handled" }))
    :depends_on("check_tier"):route("free")
return flow
