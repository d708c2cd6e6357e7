-- Prepare an article for publishing with the example plugin's nodes.
-- Needs ironflow-nodes-example installed next to ironflow-core:
--   ironflow run examples/plugin/flows/publish.lua --context '{"title": "Crème Brûlée, 2 ways!", "body": "Two ways to make it.\nBoth are easy; both are good."}'
local flow = Flow.new("publish")

flow:step("slug", nodes.slugify({
    input = "${ctx.title}",
    max_length = 40,
}))

flow:step("stats", nodes.word_count({
    source_key = "body",
    top = 3,
}))

flow:step("summary", nodes.template_render({
    template = "/articles/${ctx.slug}: ${ctx.word_count} words, ${ctx.word_count_lines} lines",
    output_key = "summary",
})):depends_on("slug", "stats")

flow:step("announce", nodes.log({ message = "${ctx.summary}" })):depends_on("summary")

return flow
