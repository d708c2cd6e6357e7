-- upstream example 07-advanced/data_pipeline: completed orders -> unique by id -> reshaped
-- -> JSON text -> SHA-256 fingerprint -> batches. `orders` may come from the
-- context; a value that is not an array fails the filter step.
local flow = Flow.new("data_pipeline")

flow:step("defaults", function(ctx)
    if ctx.orders == nil then
        return {
            orders = {
                { id = "A1", customer = "Alice", amount = 100, status = "completed" },
                { id = "A2", customer = "Bob", amount = 50, status = "pending" },
                { id = "A1", customer = "Alice", amount = 100, status = "completed" },
                { id = "A3", customer = "Carol", amount = 200, status = "completed" },
                { id = "A4", customer = "Dave", amount = 75, status = "completed" },
                { id = "A5", customer = "Eve", amount = 20, status = "cancelled" },
            },
        }
    end
end)

flow:step("completed", nodes.data_filter({
    source_key = "orders",
    output_key = "completed_orders",
    field = "status",
    op = "eq",
    value = "completed",
})):depends_on("defaults")

flow:step("unique", nodes.deduplicate({
    source_key = "completed_orders",
    output_key = "unique_orders",
    key = "id",
})):depends_on("completed")

flow:step("reshape", nodes.data_transform({
    source_key = "unique_orders",
    output_key = "orders_out",
    mapping = { order_id = "id", buyer = "customer", total = "amount" },
})):depends_on("unique")

flow:step("serialize", nodes.json_stringify({
    source_key = "orders_out",
    output_key = "orders_json",
})):depends_on("reshape")

flow:step("fingerprint", nodes.hash({
    source_key = "orders_json",
    output_key = "orders_hash",
})):depends_on("serialize")

flow:step("chunk", nodes.batch({
    source_key = "orders_out",
    output_key = "batches",
    size = 10,
})):depends_on("reshape")

flow:step("report", nodes.log({
    message = "${ctx.completed_orders_count} completed, ${ctx.unique_orders_removed} duplicate, "
        .. "hash ${ctx.orders_hash}",
})):depends_on("fingerprint", "chunk")

return flow
