-- upstream example 05-http/status_inspection_retry: keep error responses as data
-- (fail_on_status = false), retry 429/5xx once honouring a capped
-- Retry-After, then classify the final status. `backoff` (optional) reaches
-- the strict float through interpolation (NODE-6).
local flow = Flow.new("status_inspection_retry")

flow:step("seed", function(ctx)
    return { target_status = ctx.target_status or "429", backoff = ctx.backoff or 0.05 }
end)

flow:step("probe", nodes.http_get({
    url = "${ctx.base}/status/${ctx.target_status}",
    output_key = "provider",
    fail_on_status = false,
    retry_statuses = { 429, 500, "502", 503 },
    status_retries = 1,
    status_retry_backoff = "${ctx.backoff}",
    respect_retry_after = true,
    max_retry_after = 0.3
})):depends_on("seed")

flow:step("route", nodes.if_http_status({
    status_key = "provider_status",
    _step_name = "provider",
    default_route = "other",
    routes = {
        ["2xx"] = "ok",
        ["401"] = "auth_error",
        ["429"] = "rate_limited",
        ["5xx"] = "provider_error"
    }
})):depends_on("probe")

flow:step("ok", nodes.log({
    message = "Provider answered ${ctx.provider_status} after ${ctx.provider_attempts} attempt(s)"
})):depends_on("route"):route("ok")

flow:step("auth_error", nodes.log({
    message = "Not authorised: ${ctx.provider_status}"
})):depends_on("route"):route("auth_error")

flow:step("rate_limited", nodes.log({
    message = "Rate limited after ${ctx.provider_attempts} attempt(s)"
})):depends_on("route"):route("rate_limited")

flow:step("provider_error", nodes.log({
    message = "Provider failed with ${ctx.provider_status} after ${ctx.provider_attempts} attempt(s)"
})):depends_on("route"):route("provider_error")

flow:step("other", nodes.log({
    message = "Unhandled status ${ctx.provider_status}, success=${ctx.provider_success}"
})):depends_on("route"):route("other")

return flow
