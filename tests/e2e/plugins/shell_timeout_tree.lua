-- ENG-72 / SH-5: a deadline kills the whole process group of a shell that
-- left a background child, whether it is the step's `:timeout()` or the
-- node's own `timeout`. Each shell records its pid, its process group and
-- the background pid in a file under `${ctx.dir}` before blocking.
local flow = Flow.new("shell_timeout_tree")

local function record_and_block(file)
    return "sleep 30 & echo \"$$ $(cut -d' ' -f5 /proc/$$/stat) $!\" > ${ctx.dir}/"
        .. file .. "; sleep 30"
end

flow:step("hang", nodes.shell_command({
    cmd = "sh",
    args = { "-c", record_and_block("step.pids") }
})):timeout(1)

flow:step("hang_node", nodes.shell_command({
    cmd = "sh",
    args = { "-c", record_and_block("node.pids") },
    timeout = 0.5
}))

flow:step("never", nodes.log({ message = "unreachable" })):depends_on("hang")

return flow
