-- A failing read is caught by an on_error handler; the run still succeeds.
local flow = Flow.new("on_error_example")
local missing = (env("TMPDIR") or "/tmp") .. "/ironflow-absent-" .. uuid4() .. ".txt"

flow:step("channel", function()
    return { channel = "workflow-log" }
end)

flow:step("risky_step", nodes.read_file({ path = missing })):on_error("recover")

flow:step("recover", function(ctx)
    return {
        error_handled = true,
        error_info = "[" .. ctx.channel .. "] Caught error in step '"
            .. ctx._error_step .. "': " .. ctx._error_message
    }
end):depends_on("channel")

flow:step("final", nodes.log({
    message = "Recovered: ${ctx.error_info}"
})):depends_on("recover")

return flow
