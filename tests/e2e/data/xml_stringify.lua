-- upstream example 18-xml-yaml/xml_stringify: JSON -> pretty XML (XS-2, vector XS-3).
-- `catalog` may come from the context.
local flow = Flow.new("xml_stringify")

flow:step("defaults", function(ctx)
    local out = {
        shelf = {
            ["@label"] = "a&b",
            ["@count"] = 2,
            book = { "One", "Two <3>" },
            empty = json_null,
            note = { ["#text"] = "hi", ["@lang"] = "en" },
        },
    }
    if ctx.catalog == nil then
        out.catalog = { book = { id = "1", title = "Rust in Action", price = 39.99 } }
    end
    return out
end)

flow:step("pretty", nodes.xml_stringify({
    source_key = "catalog",
    output_key = "xml_catalog",
    root_tag = "catalog_root",
    pretty = true,
})):depends_on("defaults")

flow:step("compact", nodes.xml_stringify({
    source_key = "shelf",
    output_key = "xml_shelf",
})):depends_on("defaults")

return flow
