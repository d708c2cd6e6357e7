-- upstream example 02-data-transforms/json_operations: parse JSON text, keep two fields,
-- serialize them back. `raw_json` may come from the context; invalid text
-- makes the parse step (and the run) fail.
local flow = Flow.new("json_operations")

flow:step("defaults", function(ctx)
    if ctx.raw_json == nil then
        return {
            raw_json = '{"role": "admin", "name": "Alice", "age": 30, '
                .. '"email": "alice@example.com"}',
        }
    end
end)

flow:step("parse", nodes.json_parse({
    source_key = "raw_json",
    output_key = "parsed",
})):depends_on("defaults")

flow:step("summary", nodes.select_fields({
    source_key = "parsed",
    output_key = "user_summary",
    fields = { "name", "email", "nickname" },
})):depends_on("parse")

flow:step("role", nodes.json_extract_path({
    source_key = "raw_json",
    path = "role",
    output_key = "role",
    parse_json = true,
})):depends_on("parse")

flow:step("missing", nodes.json_extract_path({
    source_key = "parsed",
    path = "address.city",
    output_key = "missing",
    default = "<none>",
})):depends_on("parse")

flow:step("serialize", nodes.json_stringify({
    source_key = "user_summary",
    output_key = "result_json",
})):depends_on("summary")

return flow
