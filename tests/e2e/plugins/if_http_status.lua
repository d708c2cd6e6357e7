-- upstream example 05-http/if_http_status: probe /status/<n> and route by code or class.
-- The messages read `_status_code_probe`, which the router never writes (its
-- keys carry its own step name, `route`), so the code renders empty [quirk].
local flow = Flow.new("if_http_status")

flow:step("seed", function(ctx)
    return { target_status = ctx.target_status or "200" }
end)

flow:step("probe", nodes.http_get({
    url = "${ctx.base}/status/${ctx.target_status}",
    output_key = "probe"
})):depends_on("seed")

flow:step("route", nodes.if_http_status({
    status_key = "probe_status",
    _step_name = "probe",
    default_route = "unexpected",
    routes = { ["2xx"] = "success", ["401"] = "unauthorized", ["429"] = "rate_limited" }
})):depends_on("probe")

flow:step("success", nodes.log({
    message = "HTTP ${ctx._status_code_probe} success"
})):depends_on("route"):route("success")

flow:step("unauthorized", nodes.log({
    message = "HTTP ${ctx._status_code_probe} unauthorized"
})):depends_on("route"):route("unauthorized")

flow:step("rate_limited", nodes.log({
    message = "HTTP ${ctx._status_code_probe} rate limited"
})):depends_on("route"):route("rate_limited")

flow:step("unexpected", nodes.log({
    message = "HTTP ${ctx._status_code_probe} class ${ctx._status_class_probe}"
})):depends_on("route"):route("unexpected")

return flow
