-- upstream example 02-data-transforms/csv_parse_stringify: CSV text -> row objects -> CSV
-- with the header sorted (CSV-10). `raw_csv` may come from the context.
local flow = Flow.new("csv_parse_stringify")

flow:step("defaults", function(ctx)
    if ctx.raw_csv == nil then
        return {
            raw_csv = "name, status ,email\n"
                .. "Alice, active, alice@example.com\n"
                .. "\n"
                .. "Bob,inactive ,bob@example.com\n"
                .. "Carol,active,carol@example.com\n"
                .. "Dave , active,dave@example.com\n",
        }
    end
end)

flow:step("parse", nodes.csv_parse({
    source_key = "raw_csv",
    output_key = "users",
    trim = true,
})):depends_on("defaults")

flow:step("stringify", nodes.csv_stringify({
    source_key = "users",
    output_key = "normalized_csv",
})):depends_on("parse")

flow:step("report", nodes.log({ message = "Normalized ${ctx.users} into CSV" }))
    :depends_on("stringify")

return flow
