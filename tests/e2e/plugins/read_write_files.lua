-- upstream example 04-file-operations/read_write_files: write a note, read it back, list
-- its directory, then delete it. `dir` (required) and `timestamp` (optional)
-- come from --context.
local flow = Flow.new("read_write_files")

flow:step("save", nodes.write_file({
    path = "${ctx.dir}/note.txt",
    content = "Hello from IronFlow!\nTimestamp: ${ctx.timestamp}"
}))

flow:step("load", nodes.read_file({
    path = "${ctx.dir}/note.txt",
    output_key = "result"
})):depends_on("save")

flow:step("announce", nodes.log({
    message = "Read back: ${ctx.result_content}"
})):depends_on("load")

flow:step("inventory", nodes.list_directory({
    path = "${ctx.dir}",
    output_key = "tmp_files"
})):depends_on("save")

flow:step("tidy", nodes.delete_file({
    path = "${ctx.dir}/note.txt"
})):depends_on("load", "inventory")

return flow
