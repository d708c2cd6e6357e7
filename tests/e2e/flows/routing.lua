-- upstream example 03-control-flow/conditional_routing: if_node routes; the join still runs.
local flow = Flow.new("routing")
flow:step("check_amount", nodes.if_node({
    condition = "ctx.amount > 100", true_route = "high_value", false_route = "standard",
}))
flow:step("high_value_order", nodes.log({
    message = "High-value order: $${ctx.amount} — applying VIP discount",
})):depends_on("check_amount"):route("high_value")
flow:step("standard_order", nodes.log({ message = "Standard order: $${ctx.amount}" }))
    :depends_on("check_amount"):route("standard")
return flow
