-- upstream example 01-basics/lua_globals and base64_globals: runtime globals inside handlers.
local flow = Flow.new("globals")
flow:step("ids", function(ctx)
    local doc = json_parse('{"score": 42, "active": true}')
    return {
        request_id = uuid4(),
        created_at = now_rfc3339(),
        epoch_ms = now_unix_ms(),
        serialized = json_stringify({ name = "Alice", roles = json_array({ "admin", "editor" }) }),
        parsed_score = doc.score,
        parsed_active = doc.active,
    }
end)
flow:step("b64", function(ctx)
    local encoded = base64_encode("Hello, IronFlow!")
    local decoded = base64_decode(encoded)
    return { encoded = encoded, decoded = decoded, roundtrip_ok = decoded == "Hello, IronFlow!" }
end)
return flow
