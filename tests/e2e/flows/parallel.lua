-- upstream example 01-basics/parallel_execution: two independent steps, then a join.
local flow = Flow.new("parallel")
flow:step("task_a", nodes.code({ source = 'return { task_a_result = "A complete" }' }))
flow:step("task_b", function(ctx) return { task_b_result = "B complete" } end)
flow:step("join", nodes.log({ message = "${ctx.task_a_result}; ${ctx.task_b_result}" }))
    :depends_on("task_a", "task_b")
return flow
