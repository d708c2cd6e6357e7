-- upstream example 06-shell/run_commands: plain programs, arguments, an extra environment
-- and a probe whose non-zero exit is inspected instead of failing the run.
local flow = Flow.new("run_commands")

flow:step("who", nodes.shell_command({
    cmd = "whoami",
    output_key = "user"
}))

flow:step("disk", nodes.shell_command({
    cmd = "df",
    args = { "-h", "/" },
    timeout = 10,
    output_key = "disk"
}))

flow:step("greet", nodes.shell_command({
    cmd = "sh",
    args = { "-c", "echo \"Hello $WHO from $WHERE\"" },
    env = { WHO = "IronFlow", WHERE = "shell_command node" },
    output_key = "echo"
}))

flow:step("probe", nodes.shell_command({
    cmd = "sh",
    args = { "-c", "printf 'service not ready' >&2; exit 7" },
    fail_on_nonzero = false,
    output_key = "probe"
}))

flow:step("summary", nodes.log({
    message = "user=${ctx.user_stdout} probe=${ctx.probe_code}"
})):depends_on("who", "disk", "greet", "probe")

return flow
