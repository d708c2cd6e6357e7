-- upstream example 07-advanced/schema_validation: validate an order object with a schema
-- kept in the context (`schema_key`), then report it. `order` may come from
-- the context; an order without `amount` fails the run.
local flow = Flow.new("schema_validation")

flow:step("defaults", function(ctx)
    local out = {
        order_schema = {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            type = "object",
            required = { "id", "customer", "amount" },
            properties = {
                id = { type = "string" },
                customer = { type = "string" },
                amount = { type = "number", exclusiveMinimum = 0 },
            },
        },
    }
    if ctx.order == nil then
        out.order = { id = "ORD-001", customer = "Alice", amount = 99.99 }
    end
    return out
end)

flow:step("validate", nodes.validate_schema({
    source_key = "order",
    schema_key = "order_schema",
})):depends_on("defaults")

flow:step("process", nodes.log({
    message = "Order ${ctx.order.id} validated — processing $${ctx.order.amount} "
        .. "for ${ctx.order.customer}",
})):depends_on("validate")

return flow
