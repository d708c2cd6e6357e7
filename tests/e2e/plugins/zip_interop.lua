-- ZC-1 / ZC-3 / ZC-5: archive a folder with its root name; the test opens
-- the result with another ZIP reader. `src` and `out` come from --context.
local flow = Flow.new("zip_interop")

flow:step("pack", nodes.zip_create({
    source = "${ctx.src}",
    zip_path = "${ctx.out}",
    include_root = true
}))

return flow
