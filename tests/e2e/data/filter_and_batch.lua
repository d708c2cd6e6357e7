-- upstream example 02-data-transforms/filter_and_batch: keep active users, drop duplicate
-- e-mails, then cut the result into pairs. `users` may come from the context.
local flow = Flow.new("filter_and_batch")

flow:step("defaults", function(ctx)
    if ctx.users == nil then
        return {
            users = {
                { name = "Alice", email = "alice@example.com", active = true },
                { name = "Bob", email = "bob@example.com", active = false },
                { name = "Carol", email = "carol@example.com", active = true },
                { name = "Dave", email = "dave@example.com", active = true },
                { name = "Erin", email = "erin@example.com" },
            },
        }
    end
end)

flow:step("active", nodes.data_filter({
    source_key = "users",
    output_key = "active_users",
    field = "active",
    op = "eq",
    value = true,
})):depends_on("defaults")

flow:step("unique", nodes.deduplicate({
    source_key = "active_users",
    output_key = "unique_users",
    key = "email",
})):depends_on("active")

flow:step("pairs", nodes.batch({
    source_key = "unique_users",
    output_key = "batches",
    size = 2,
})):depends_on("unique")

flow:step("summary", nodes.log({
    message = "Active: ${ctx.active_users_count}, Unique: after removing "
        .. "${ctx.unique_users_removed} dupes, Batches: ${ctx.batches_count}",
})):depends_on("pairs")

return flow
