-- upstream example 07-advanced/json_validate: validate JSON text against an inline schema,
-- then parse it. `payload_json` may come from the context; "{}" fails the
-- validation step with a structured failure.
local flow = Flow.new("json_validate")

flow:step("defaults", function(ctx)
    if ctx.payload_json == nil then
        return { payload_json = '{"id": "ORD-123", "amount": 42.5, "items": ["pen", "ink"]}' }
    end
end)

flow:step("check", nodes.json_validate({
    source_key = "payload_json",
    schema = {
        type = "object",
        required = { "id", "amount", "items" },
        properties = {
            id = { type = "string", pattern = "^ORD-" },
            amount = { type = "number", minimum = 0 },
            items = { type = "array", items = { type = "string" }, minItems = 1 },
        },
    },
})):depends_on("defaults")

flow:step("parse", nodes.json_parse({
    source_key = "payload_json",
    output_key = "payload",
})):depends_on("check")

return flow
