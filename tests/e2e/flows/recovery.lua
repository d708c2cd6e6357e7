-- semantics.md#recovery / ENG-115: a failing step recovered by its on_error handler.
local flow = Flow.new("recovery")
flow:step("risky", function(ctx) error("disk on fire", 0) end):on_error("handler")
flow:step("handler", function(ctx)
    return { caught = true, seen_step = ctx._error_step, seen_type = ctx._error_node_type,
             seen_message = ctx._error_message }
end)
flow:step("final", nodes.log({ message = "after recovery" })):depends_on("risky")
return flow
