-- upstream example 07-advanced/markdown_conversion: Markdown (GFM table) -> HTML, and
-- HTML -> Markdown.
local flow = Flow.new("markdown_conversion")

flow:step("source", function(ctx)
    return {
        doc = "# Release notes\n\nThis is **bold** and ~~gone~~.\n\n"
            .. "| node | kind |\n|------|------|\n| hash | utility |\n",
    }
end)

flow:step("to_html", nodes.markdown_to_html({
    source_key = "doc",
})):depends_on("source")

flow:step("to_markdown", nodes.html_to_markdown({
    input = "<h2>Hello World</h2><p>From <em>IronFlow</em></p>",
}))

return flow
