-- upstream example 18-xml-yaml/yaml_parse: YAML text -> JSON with YAML 1.2 core-schema
-- scalars (YP-2).
local flow = Flow.new("yaml_parse")

flow:step("config", nodes.yaml_parse({
    input = "server:\n  host: localhost\n  port: 8080\n  features:\n    - auth\n    - logging\n",
    output_key = "config",
}))

-- yes/on stay strings, TRUE is a boolean, 010 is decimal ten, ~ is null.
flow:step("scalars", nodes.yaml_parse({
    input = "answer: yes\nswitch: on\nflag: TRUE\ncount: 010\nratio: 1.5\nnothing: ~\n",
    output_key = "scalars",
}))

return flow
