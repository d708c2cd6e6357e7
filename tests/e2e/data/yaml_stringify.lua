-- upstream example 18-xml-yaml/yaml_stringify: JSON -> block YAML that parses back to the
-- same value (YS-1). `config` may come from the context.
local flow = Flow.new("yaml_stringify")

flow:step("defaults", function(ctx)
    if ctx.config == nil then
        return {
            config = {
                server = { host = "localhost", port = 8080, features = { "auth", "logging" } },
                ratio = 0.5,
                note = "yes",
                tags = { "b: c", "010", "true" },
                nested = { empty = json_array({}), none = json_null },
            },
        }
    end
end)

flow:step("stringify", nodes.yaml_stringify({
    source_key = "config",
    output_key = "yaml_config",
})):depends_on("defaults")

flow:step("reparse", nodes.yaml_parse({
    source_key = "yaml_config",
    output_key = "roundtrip",
})):depends_on("stringify")

return flow
