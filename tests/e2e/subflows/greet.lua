-- Child flow: greets ctx.name, or the world when no name was passed in.
local flow = Flow.new("greet")

flow:step("compose", nodes.code({
    source = function(ctx)
        local who = ctx.name
        if who == nil then
            who = "World"
        end
        return { greeting = "Hello, " .. who .. "!" }
    end
}))

return flow
