-- upstream example 05-http/if_body_contains: route on the text of a JSON response. The
-- `_step_name` below is ignored (DSL-26): routes land under `_route_inspect`.
local flow = Flow.new("if_body_contains")

flow:step("fetch", nodes.http_get({
    url = "${ctx.base}/get?site=${ctx.site}",
    output_key = "resp"
}))

flow:step("as_text", nodes.json_stringify({
    source_key = "resp_data",
    output_key = "resp_text"
})):depends_on("fetch")

flow:step("inspect", nodes.if_body_contains({
    source_key = "resp_text",
    pattern = "httpbin.org",
    _step_name = "resp",
    true_route = "has_httpbin",
    false_route = "no_httpbin",
    case_sensitive = false
})):depends_on("as_text")

flow:step("has_httpbin", nodes.log({
    message = "mentions httpbin.org"
})):depends_on("inspect"):route("has_httpbin")

flow:step("no_httpbin", nodes.log({
    message = "no mention of httpbin.org"
})):depends_on("inspect"):route("no_httpbin")

return flow
