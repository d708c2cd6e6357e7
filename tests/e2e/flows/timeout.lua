-- upstream example 01-basics/retries_and_timeout: a slow step hits its total budget,
-- its dependent is skipped, an independent branch still succeeds.
local flow = Flow.new("timeouts")
flow:step("slow_task", nodes.delay({ seconds = 30 })):retries(2, 0.1):timeout(0.5)
flow:step("after_slow", nodes.log({ message = "never" })):depends_on("slow_task")
flow:step("independent", nodes.log({ message = "I run independently!" }))
return flow
