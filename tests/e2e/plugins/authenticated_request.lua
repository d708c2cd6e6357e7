-- upstream example 05-http/authenticated_request: a bearer token (env API_TOKEN, read at
-- load time, else a demo token) and basic credentials, sent in parallel.
local flow = Flow.new("authenticated_request")

flow:step("with_bearer", nodes.http_get({
    url = "${ctx.base}/bearer",
    auth = { type = "bearer", token = env("API_TOKEN") or "demo-token" },
    output_key = "bearer"
}))

flow:step("with_basic", nodes.http_get({
    url = "${ctx.base}/basic-auth/user/pass",
    auth = { type = "basic", username = "user", password = "pass" },
    output_key = "basic"
}))

flow:step("summary", nodes.log({
    message = "bearer=${ctx.bearer_status} basic=${ctx.basic_status}"
})):depends_on("with_bearer", "with_basic")

return flow
