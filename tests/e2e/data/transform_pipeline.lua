-- upstream example 02-data-transforms/transform_pipeline: filter adults, reshape them,
-- rename config fields, batch, and deduplicate tags. `users`, `tags` and
-- `config` may come from the context.
local flow = Flow.new("transform_pipeline")

flow:step("defaults", function(ctx)
    local out = {}
    if ctx.users == nil then
        out.users = {
            { name = "Ann Lee", age = 25 },
            { name = "Ben Ode", age = 17 },
            { name = "Cy Park", age = 32 },
            { name = "Di Moss", age = 41 },
            { name = "Ed Hale", age = 12 },
            { name = "Flo Yu", age = 28 },
        }
    end
    if ctx.tags == nil then
        out.tags = { { tag = "a" }, { tag = "b" }, { tag = "a" } }
    end
    if ctx.config == nil then
        out.config = { host = "localhost", port = 5432 }
    end
    return out
end)

flow:step("adults", nodes.data_filter({
    source_key = "users",
    output_key = "adults",
    field = "age",
    op = "gte",
    value = 18,
})):depends_on("defaults")

flow:step("reshape", nodes.data_transform({
    source_key = "adults",
    output_key = "transformed",
    mapping = { full_name = "name", years = "age" },
})):depends_on("adults")

-- rename_fields maps OLD -> NEW (RN-1); this mapping is written NEW -> OLD,
-- so no source field matches and the config is copied unchanged.
flow:step("rename", nodes.rename_fields({
    source_key = "config",
    output_key = "renamed_config",
    mapping = { server_host = "host", server_port = "port" },
})):depends_on("defaults")

flow:step("chunks", nodes.batch({
    source_key = "users",
    output_key = "batches",
    size = "2",
})):depends_on("defaults")

flow:step("tags", nodes.deduplicate({
    source_key = "tags",
    output_key = "unique_tags",
})):depends_on("defaults")

return flow
