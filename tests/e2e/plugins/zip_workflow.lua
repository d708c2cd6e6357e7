-- upstream example 04-file-operations/zip_workflow: make a folder with mkdir, put two
-- files in it, archive, list, extract, then delete only the archive.
local flow = Flow.new("zip_workflow")

flow:step("make_dir", nodes.shell_command({
    cmd = "mkdir",
    args = { "-p", "${ctx.dir}/source" }
}))

flow:step("first_file", nodes.write_file({
    path = "${ctx.dir}/source/alpha.txt",
    content = "first file"
})):depends_on("make_dir")

flow:step("second_file", nodes.write_file({
    path = "${ctx.dir}/source/beta.txt",
    content = "second file"
})):depends_on("first_file")

flow:step("archive", nodes.zip_create({
    source = "${ctx.dir}/source",
    zip_path = "${ctx.dir}/bundle.zip",
    compression = "deflated",
    max_entries = 8,
    max_depth = 2,
    max_total_uncompressed_bytes = 4096
})):depends_on("second_file")

flow:step("inspect", nodes.zip_list({
    path = "${ctx.dir}/bundle.zip",
    output_key = "zip_members",
    max_entries = 8
})):depends_on("archive")

flow:step("unpack", nodes.zip_extract({
    path = "${ctx.dir}/bundle.zip",
    destination = "${ctx.dir}/unpacked",
    output_key = "extracted_items",
    overwrite = false
})):depends_on("inspect")

flow:step("summary", nodes.log({
    message = "${ctx.zip_members_count} members unpacked into ${ctx.zip_extract_destination}"
})):depends_on("unpack")

flow:step("remove_archive", nodes.delete_file({
    path = "${ctx.dir}/bundle.zip"
})):depends_on("summary")

return flow
