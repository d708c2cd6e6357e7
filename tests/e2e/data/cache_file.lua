-- upstream example 09-cache/cache_file: a file-backed cache in a fresh directory under
-- $TMPDIR (chosen when the flow loads); the second write replaces the first.
local cache_dir = (env("TMPDIR") or "/tmp") .. "/ironflow-cache-file-" .. uuid4()

local flow = Flow.new("cache_file")

flow:step("first_write", nodes.cache_set({
    key = "app_config",
    value = { version = "1.0.0", debug = true, max_retries = 3 },
    backend = "file",
    cache_dir = cache_dir,
}))

flow:step("second_write", nodes.cache_set({
    key = "app_config",
    value = { version = "1.1.0", debug = false, max_retries = 3 },
    ttl = "3600",
    backend = "file",
    cache_dir = cache_dir,
})):depends_on("first_write")

flow:step("read_back", nodes.cache_get({
    key = "app_config",
    backend = "file",
    cache_dir = cache_dir,
    output_key = "config",
})):depends_on("second_write")

flow:step("report", nodes.log({ message = "Config version ${ctx.config.version}" }))
    :depends_on("read_back")

return flow
