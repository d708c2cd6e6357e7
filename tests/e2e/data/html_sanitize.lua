-- upstream example 19-html-sanitize/html_sanitize: scripts and event handlers removed (MD-3).
local flow = Flow.new("html_sanitize")

flow:step("dirty", nodes.template_render({
    template = '<h1>Hello</h1><script>alert("xss")</script><p onclick="steal()">Safe text</p>',
    output_key = "dirty_html",
}))

flow:step("clean", nodes.html_sanitize({
    source_key = "dirty_html",
    output_key = "clean_html",
})):depends_on("dirty")

flow:step("only_bold", nodes.html_sanitize({
    input = "<p><b>kept</b> <i>dropped tag</i></p>",
    allowed_tags = { "b" },
    output_key = "bold_only",
}))

return flow
