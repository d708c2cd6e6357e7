-- upstream example 07-advanced/function_handler: plain Lua over context data.
local flow = Flow.new("admins")
flow:step("pick", function(ctx)
    local users = ctx.users or json_array({
        { name = "alice", role = "admin", age = 30 },
        { name = "bob", role = "user", age = 25 },
        { name = "charlie", role = "admin", age = 35 },
    })
    local admins = json_array({})
    for _, user in ipairs(users) do
        if user.role == "admin" then
            table.insert(admins, { name = string.upper(user.name), age = user.age })
        end
    end
    return { admins = admins, admin_count = #admins }
end)
flow:step("report", nodes.log({ message = "Found ${ctx.admin_count} admins" })):depends_on("pick")
return flow
