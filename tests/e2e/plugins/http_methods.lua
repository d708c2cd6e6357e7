-- upstream example 05-http/http_methods: the generic node with an explicit method, then
-- the fixed-method PUT, DELETE and a form-encoded POST.
local flow = Flow.new("http_methods")

flow:step("generic", nodes.http_request({
    method = "get",
    url = "${ctx.base}/get?via=generic",
    output_key = "generic"
}))

flow:step("replace", nodes.http_put({
    url = "${ctx.base}/put",
    body = { role = "admin", name = "${ctx.who}" },
    output_key = "put_result"
}))

flow:step("remove", nodes.http_delete({
    url = "${ctx.base}/delete",
    output_key = "delete_result"
}))

flow:step("submit", nodes.http_post({
    url = "${ctx.base}/post",
    body = { name = "${ctx.who}", note = "a&b=c", count = 3 },
    body_type = "form",
    output_key = "post_result"
}))

flow:step("summary", nodes.log({
    message = "GET ${ctx.generic_status}, PUT ${ctx.put_result_status}, DELETE ${ctx.delete_result_status}, POST ${ctx.post_result_status}"
})):depends_on("generic", "replace", "remove", "submit")

return flow
