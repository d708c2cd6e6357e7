-- ENG-72 / SH-5: a step deadline kills the whole process group of a shell
-- that left a background child. The shell records its pid, its process
-- group and the background pid in `${ctx.dir}/pids` before blocking.
local flow = Flow.new("shell_timeout_tree")

flow:step("hang", nodes.shell_command({
    cmd = "sh",
    args = {
        "-c",
        "sleep 30 & echo \"$$ $(cut -d' ' -f5 /proc/$$/stat) $!\" > ${ctx.dir}/pids; sleep 30"
    }
})):timeout(1)

flow:step("never", nodes.log({ message = "unreachable" })):depends_on("hang")

return flow
