"""ironflow-otel on real runs: the span tree, errors on spans, ``traceparent`` on the wire.

The plugin is loaded through its ``ironflow`` entry point, as a third party's
would be; spans land in the SDK's in-memory exporter (see conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ironflow_core.engine import execute
from ironflow_core.loading import load_flow
from ironflow_core.model import RunStatus
from ironflow_core.registry import build_registry
from ironflow_core.stores.memory import MemoryStore

from ..nodes_http.loopback import Answer, LoopbackServer

CHILD = """
local flow = Flow.new("child")
flow:step("inner", nodes.template_render({ template = "hi ${ctx.who}", output_key = "said" }))
return flow
"""
PARENT = """
local flow = Flow.new("traced")
flow:step("flaky", nodes.shell_command({
  cmd = "sh",
  args = { "-c", 'if [ -e "$MARK" ]; then exit 0; fi; touch "$MARK"; exit 3' },
  env = { MARK = "${ctx.mark}" },
})):retries(1, 0.01)
flow:step("call", nodes.http_get({ url = "${ctx.url}", output_key = "reply" }))
  :depends_on("flaky")
flow:step("nested", nodes.subworkflow({ flow = "child.lua", input = { who = "flaky" },
                                        output_key = "child" }))
  :depends_on("call")
flow:step("broken", nodes.json_parse({ source_key = "missing", output_key = "parsed" }))
  :depends_on("flaky")
return flow
"""


def tree(finished: Any) -> list[str]:
    """``name [status] attrs`` lines, indented by depth, children in start order."""
    by_parent: dict[Any, list[Any]] = {}
    for span in finished:
        parent = span.parent.span_id if span.parent is not None else None
        by_parent.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: Any, depth: int) -> None:
        for span in sorted(by_parent.get(parent, []), key=lambda s: s.start_time):
            attrs = dict(span.attributes or {})
            shown = {k.removeprefix("ironflow."): v for k, v in attrs.items()
                     if k in ("ironflow.node.type", "ironflow.task.attempt",
                              "ironflow.task.status", "ironflow.run.status")}
            lines.append(f"{'  ' * depth}{span.name} [{span.status.status_code.name}] "
                         f"{json.dumps(shown, sort_keys=True)}")
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return lines


async def test_span_tree_of_a_run_with_a_retry_a_failure_and_a_subworkflow(
        spans: Any, tmp_path: Path, nursery: Any):
    server = LoopbackServer()
    server.route("/ping", Answer(200, [("Content-Type", "text/plain")], b"pong"))
    await nursery.start(server.serve)
    (tmp_path / "child.lua").write_text(CHILD)
    (tmp_path / "traced.lua").write_text(PARENT)
    registry = build_registry()
    assert any(type(o).__name__ == "TracingObserver" for o in registry.observers)
    flow = load_flow(str(tmp_path / "traced.lua"), registry=registry, env={})
    record = await execute(flow, store=MemoryStore(), registry=registry, env={}, context={
        "mark": str(tmp_path / "mark"), "url": server.url("/ping"),
        "_flow_dir": str(tmp_path)})
    assert record.status is RunStatus.FAILED

    finished = spans.get_finished_spans()
    lines = tree(finished)
    (tmp_path / "tree.txt").write_text("\n".join(lines) + "\n")
    assert lines == [
        'run traced [ERROR] {"run.status": "failed"}',
        '  task flaky [ERROR] {"node.type": "shell_command", "task.attempt": 1, '
        '"task.status": "failed"}',
        '  task flaky [OK] {"node.type": "shell_command", "task.attempt": 2, '
        '"task.status": "success"}',
        *sorted([
            '  task call [OK] {"node.type": "http_get", "task.attempt": 1, '
            '"task.status": "success"}',
            '  task broken [ERROR] {"node.type": "json_parse", "task.attempt": 1, '
            '"task.status": "failed"}',
        ], key=lambda line: next(s.start_time for s in finished if s.name in line)),
        '  task nested [OK] {"node.type": "subworkflow", "task.attempt": 1, '
        '"task.status": "success"}',
        '    run child [OK] {"run.status": "success"}',
        '      task inner [OK] {"node.type": "template_render", "task.attempt": 1, '
        '"task.status": "success"}',
    ]
    assert len({s.context.trace_id for s in finished}) == 1
    by_name = {(s.name, s.attributes.get("ironflow.task.attempt")): s for s in finished}
    broken = by_name[("task broken", 1)]
    assert "missing" in broken.status.description
    (event,) = [e for e in broken.events if e.name == "exception"]
    assert "missing" in event.attributes["exception.message"]
    first = by_name[("task flaky", 1)]
    assert "exited with code 3" in first.status.description
    run = next(s for s in finished if s.name == "run traced")
    assert run.attributes["ironflow.flow.name"] == "traced"
    assert [e.name for e in run.events] == ["task retrying"]

    # the HTTP step sent its own span's context to the server it called
    call = by_name[("task call", 1)]
    (seen,) = server.seen
    version, trace_id, span_id, flags = seen.header("traceparent").split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert int(trace_id, 16) == call.context.trace_id
    assert int(span_id, 16) == call.context.span_id


async def test_a_header_the_flow_sets_is_never_replaced(spans: Any, tmp_path: Path,
                                                          nursery: Any):
    server = LoopbackServer()
    server.route("/ping", Answer(200, [], b"ok"))
    await nursery.start(server.serve)
    (tmp_path / "own.lua").write_text("""
local flow = Flow.new("own")
flow:step("call", nodes.http_get({ url = "${ctx.url}",
  headers = { traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" } }))
return flow
""")
    registry = build_registry()
    flow = load_flow(str(tmp_path / "own.lua"), registry=registry, env={})
    record = await execute(flow, store=MemoryStore(), registry=registry, env={},
                           context={"url": server.url("/ping")})
    assert record.status is RunStatus.SUCCESS
    (seen,) = server.seen
    assert [v for k, v in seen.headers if k == "traceparent"] == [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]


PROBE = """
import os, sys, trio
from ironflow_core.engine import execute
from ironflow_core.loading import load_flow
from ironflow_core.registry import build_registry
from ironflow_core.stores.memory import MemoryStore

registry = build_registry()
flow = load_flow(sys.argv[1], registry=registry, env={})
record = trio.run(lambda: execute(flow, store=MemoryStore(), registry=registry, env={}))
assert str(record.status) == "success", record.status
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
print(len(loaded))
"""


@pytest.mark.parametrize(("disabled", "exporter", "imported"), [
    ("otel", "console", False),   # plugin not there: nothing of OpenTelemetry, even if asked
    ("", "", False),              # installed but no export configured: still nothing imported
    ("", "console", True),        # configured: the SDK is loaded and spans are printed
])
def test_opentelemetry_is_imported_only_when_the_plugin_traces(tmp_path: Path, disabled: str,
                                                               exporter: str, imported: bool):
    flow = tmp_path / "hello.lua"
    flow.write_text(CHILD)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "IRONFLOW_"))}
    env["IRONFLOW_DISABLED_PLUGINS"] = disabled
    if exporter:
        env["OTEL_TRACES_EXPORTER"] = exporter
    proc = subprocess.run([sys.executable, "-c", PROBE, str(flow)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    count = int(proc.stdout.strip().splitlines()[0])
    assert (count > 0) is imported, proc.stdout
    if imported:
        assert '"name": "run child"' in proc.stdout  # ConsoleSpanExporter's JSON
