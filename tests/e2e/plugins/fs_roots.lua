-- IRONFLOW_FS_ROOTS: a write inside the allowed root succeeds, a read and a
-- write outside it are refused (the outside paths come from --context).
local flow = Flow.new("fs_roots")

flow:step("inside", nodes.write_file({
    path = "${ctx.inside}",
    content = "kept"
}))

flow:step("peek", nodes.read_file({
    path = "${ctx.outside}",
    output_key = "peek"
}))

flow:step("escape", nodes.write_file({
    path = "${ctx.escape}",
    content = "must not land"
}))

return flow
