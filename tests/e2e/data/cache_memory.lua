-- upstream example 09-cache/cache_memory: the in-process cache, one set/get per shape,
-- then a miss. Later phases overwrite `cache_hit` and `cache_key`.
local flow = Flow.new("cache_memory")

flow:step("store_token", nodes.cache_set({
    key = "api_token",
    value = "sk-abc123-secret",
    ttl = 300,
}))

flow:step("store_user", nodes.cache_set({
    key = "current_user",
    value = { id = 42, name = "Alice", role = "admin" },
})):depends_on("store_token")

flow:step("read_token", nodes.cache_get({
    key = "api_token",
    output_key = "cached_token",
})):depends_on("store_user")

flow:step("read_user", nodes.cache_get({
    key = "current_user",
    backend = "memory",
    output_key = "cached_user",
})):depends_on("store_user")

flow:step("read_missing", nodes.cache_get({
    key = "never_stored",
    output_key = "missing_value",
})):depends_on("read_token", "read_user")

return flow
