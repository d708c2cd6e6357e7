-- IRONFLOW_SHELL_ALLOW: with the policy set to admit only `echo`, `echo`
-- runs and `sh` is refused before anything is started.
local flow = Flow.new("shell_allow")

flow:step("admitted", nodes.shell_command({
    cmd = "echo",
    args = { "allowed" },
    output_key = "admitted"
}))

flow:step("refused", nodes.shell_command({
    cmd = "sh",
    args = { "-c", "echo should-not-run > ${ctx.dir}/marker" },
    output_key = "refused"
}))

return flow
