-- SH-6 / ENG-82 / ENG-112: a non-zero exit is a structured failure; its output
-- reaches the shared context and the on_error handler as `_error_output`, and
-- the handler's success lets the source's dependents run.
local flow = Flow.new("shell_structured_failure")

flow:step("job", nodes.shell_command({
    cmd = "sh",
    args = { "-c", "printf completed; printf rejected >&2; exit 7" },
    output_key = "command"
})):on_error("rescue")

flow:step("rescue", function(ctx)
    return {
        rescued_from = ctx._error_step,
        rescued_output = ctx._error_output,
        rescued_message = ctx._error_message
    }
end)

flow:step("after", nodes.log({
    message = "job exited ${ctx.command_code}; stdout was ${ctx.command_stdout}"
})):depends_on("job")

return flow
