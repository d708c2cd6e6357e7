-- upstream example 04-file-operations/copy_move_files: create, copy, rename the copy,
-- read the renamed file, then remove both files in one phase (the
-- later-declared cleanup's delete_file_path wins, ENG-91).
local flow = Flow.new("copy_move_files")

flow:step("seed", nodes.write_file({
    path = "${ctx.dir}/original.txt",
    content = "Hello from IronFlow"
}))

flow:step("duplicate", nodes.copy_file({
    source = "${ctx.dir}/original.txt",
    destination = "${ctx.dir}/duplicate.txt"
})):depends_on("seed")

flow:step("rename", nodes.move_file({
    source = "${ctx.dir}/duplicate.txt",
    destination = "${ctx.dir}/renamed.txt"
})):depends_on("duplicate")

flow:step("check", nodes.read_file({
    path = "${ctx.dir}/renamed.txt",
    output_key = "result"
})):depends_on("rename")

flow:step("report", nodes.log({
    message = "After copy and move: ${ctx.result_content}"
})):depends_on("check")

flow:step("drop_original", nodes.delete_file({
    path = "${ctx.dir}/original.txt"
})):depends_on("report")

flow:step("drop_renamed", nodes.delete_file({
    path = "${ctx.dir}/renamed.txt"
})):depends_on("report")

return flow
