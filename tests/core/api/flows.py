"""Lua flows the API tests run (built-in nodes only: template_render, delay, log, hash, json_parse)."""

from __future__ import annotations

from pathlib import Path

HELLO = """
local flow = Flow.new("hello")
flow:step("greet", nodes.template_render({
  template = "Hello, ${ctx.name}!",
  output_key = "greeting",
}))
flow:step("note", nodes.log({ message = "greeted ${ctx.name}" })):depends_on("greet")
return flow
"""

FAILING = """
local flow = Flow.new("failing")
flow:step("parse", nodes.json_parse({ source_key = "missing", output_key = "parsed" }))
return flow
"""

SLOW = """
local flow = Flow.new("slow")
flow:step("wait", nodes.delay({ seconds = "${ctx.seconds}" }))
flow:step("done", nodes.template_render({ template = "waited", output_key = "result" }))
  :depends_on("wait")
return flow
"""

UNKNOWN_DEPENDENCY = """
local flow = Flow.new("invalid")
flow:step("a", nodes.log({ message = "a" })):depends_on("ghost")
return flow
"""

MANY_STEPS = """
local flow = Flow.new("many")
for i = 1, 6 do
  flow:step("s" .. i, nodes.log({ message = "step " .. i }))
end
return flow
"""

WEBHOOK = """
local flow = Flow.new("webhook_flow")
flow:step("greet", nodes.template_render({
  template = "Hello, ${ctx.name}!",
  output_key = "greeting",
}))
flow:step("fingerprint", nodes.hash({
  input = "${ctx._headers.traceparent}",
  output_key = "header_hash",
}))
return flow
"""

SPIN = "while true do end\n"

SECRET_MARKER = "TOP-SECRET-CONTENT-7f3a"
BROKEN = f"""
-- {SECRET_MARKER}
local flow = Flow.new("broken"
return flow
"""


def write_flows(root: Path) -> Path:
    """A flows dir with every flow above, a subfolder, and an escape via symlink."""
    flows = root / "flows"
    (flows / "sub").mkdir(parents=True)
    for name, text in {"hello.lua": HELLO, "failing.lua": FAILING, "slow.lua": SLOW,
                       "invalid.lua": UNKNOWN_DEPENDENCY, "many.lua": MANY_STEPS,
                       "webhook.lua": WEBHOOK, "broken.lua": BROKEN, "spin.lua": SPIN}.items():
        (flows / name).write_text(text)
    (flows / "sub" / "nested.lua").write_text(HELLO)
    (root / "outside.lua").write_text(HELLO.replace("hello", f"outside {SECRET_MARKER}"))
    (flows / "escape.lua").symlink_to(root / "outside.lua")
    return flows
