-- upstream example 09-cache/cache_context_keys: cache keys built from context values.
-- The file backend uses the default directory ($IRONFLOW_CACHE_DIR); the key
-- "llm:<hash>" is stored as "llm_<hash>.json" (CA-3).
local flow = Flow.new("cache_context_keys")

flow:step("defaults", function(ctx)
    local out = {}
    if ctx.user_id == nil then
        out.user_id = "u-1001"
    end
    if ctx.prompt_hash == nil then
        out.prompt_hash = "demo-hash"
    end
    return out
end)

flow:step("make_token", nodes.template_render({
    template = "token-for-${ctx.user_id}",
    output_key = "token",
})):depends_on("defaults")

flow:step("store_token", nodes.cache_set({
    key = "token:${ctx.user_id}",
    source_key = "token",
})):depends_on("make_token")

flow:step("store_response", nodes.cache_set({
    key = "llm:${ctx.prompt_hash}",
    value = { model = "demo", text = "cached response" },
    backend = "file",
})):depends_on("make_token")

flow:step("read_token", nodes.cache_get({
    key = "token:${ctx.user_id}",
    output_key = "cached_token",
})):depends_on("store_token", "store_response")

flow:step("read_response", nodes.cache_get({
    key = "llm:${ctx.prompt_hash}",
    backend = "file",
    output_key = "cached_llm_response",
})):depends_on("store_token", "store_response")

return flow
