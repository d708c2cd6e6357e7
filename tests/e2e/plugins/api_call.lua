-- upstream example 05-http/api_call: fetch a JSON document from the mock (`base` from
-- --context) and log its status.
local flow = Flow.new("api_call")

flow:step("fetch", nodes.http_get({
    url = "${ctx.base}/json",
    output_key = "api"
}))

flow:step("check", nodes.log({
    message = "status=${ctx.api_status} ok=${ctx.api_success}"
})):depends_on("fetch")

return flow
