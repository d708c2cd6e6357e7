"""Operating ``ironflow serve``: ``/metrics`` after real runs, schedules across two processes.

Both talk to real ``ironflow serve`` subprocesses on loopback ports.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from ironflow_core.model import RunStatus
from ironflow_core.schedules import occurrence_run_id
from ironflow_core.stores.json_store import JsonStore

from .flows import write_flows
from .server_process import API_KEY, ServerProcess, clean_env, run_cli

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
RETRYING = """
local flow = Flow.new("retrying")
flow:step("parse", nodes.json_parse({ source_key = "missing", output_key = "x" }))
  :retries(1, 0.01)
return flow
"""


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in an OpenMetrics page."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, flags=re.MULTILINE)
    assert match, f"no series {name}{{{wanted}}} in\n{text}"
    return float(match.group(1))


def test_metrics_page_after_a_few_runs(tmp_path: Path):
    flows = write_flows(tmp_path)
    (flows / "retrying.lua").write_text(RETRYING)
    server = ServerProcess(tmp_path, env=clean_env(IRONFLOW_API_KEY=API_KEY,
                                                   IRONFLOW_METRICS_ENABLED="true"),
                           args=["--flows-dir", str(flows)]).start()
    try:
        with server.client() as c:
            for body in ({"file": "hello.lua", "context": {"name": "Ada"}},
                         {"file": "hello.lua", "context": {"name": "Bob"}},
                         {"file": "failing.lua"}, {"file": "retrying.lua"}):
                assert c.post("/flows/run", json=body).status_code == 200
            assert c.get("/runs/no-such-run").status_code == 404
            page = c.get("/metrics")
        with server.client(auth=False) as anonymous:
            assert anonymous.get("/metrics").status_code == 401
    finally:
        server.stop()
    assert page.status_code == 200
    assert page.headers["content-type"] == OPENMETRICS
    assert page.headers["cache-control"] == "no-store"
    text = page.text
    (tmp_path / "metrics.txt").write_text(text)
    assert text.endswith("# EOF\n")
    assert sample(text, "ironflow_runs_total", outcome="success") == 2
    assert sample(text, "ironflow_runs_total", outcome="failed") == 2
    assert sample(text, "ironflow_runs_total", outcome="stalled") == 0
    assert sample(text, "ironflow_run_duration_seconds_count", outcome="success") == 2
    # hello: 2 steps x 2 runs; failing: 1; retrying: 2 attempts
    assert sample(text, "ironflow_task_attempts_total", outcome="success") == 4
    assert sample(text, "ironflow_task_attempts_total", outcome="failed") == 3
    assert sample(text, "ironflow_active_work", kind="run") == 0
    assert sample(text, "ironflow_active_work", kind="task") == 0
    assert sample(text, "ironflow_admission_decisions_total", resource="run",
                  decision="accepted") == 4
    assert sample(text, "ironflow_admission_decisions_total", resource="flow_load",
                  decision="accepted") == 4
    assert sample(text, "ironflow_storage_failures_total", store="state", operation="get_run",
                  error_kind="not_found") == 1
    assert sample(text, "ironflow_scheduler_decisions_total", outcome="fired") == 0
    assert sample(text, "ironflow_lease_events_total", outcome="lost") == 0
    for secret in ("hello", "retrying", "Ada", "no-such-run", "parse"):
        assert secret not in text  # no flow name, context value, run ID or step as a label


def test_metrics_route_is_absent_unless_enabled(tmp_path: Path):
    server = ServerProcess(tmp_path, env=clean_env(IRONFLOW_API_KEY=API_KEY)).start()
    try:
        with server.client() as c:
            assert c.get("/metrics").status_code == 404
    finally:
        server.stop()


MARK = """
local flow = Flow.new("mark")
flow:step("mark", nodes.shell_command({
  cmd = "sh",
  args = { "-c", 'echo "$AT $PPID" >> "$MARKS"' },
  env = { AT = "${ctx._scheduled_at}", MARKS = "${ctx.marks}" },
}))
return flow
"""


def test_two_serve_processes_on_one_store_run_each_occurrence_once(tmp_path: Path):
    """Both start at once; their start-up ticks race to claim the same three
    occurrences of the last three minutes (within grace). Each runs exactly once.

    The cron lists exactly those minutes, so no new occurrence falls due while
    the test runs and every count is exact.
    """
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "mark.lua").write_text(MARK)
    marks = tmp_path / "marks.log"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    due = [now - timedelta(minutes=back) for back in (2, 1, 0)]
    minutes = ",".join(str(at.minute) for at in due)
    (tmp_path / "ironflow.yaml").write_text(
        f"flows_dir: {flows}\n"
        "metrics_enabled: true\n"
        "schedules:\n"
        "  recent:\n"
        "    flow: mark.lua\n"
        f'    cron: "{minutes} * * * *"\n'
        "    grace_seconds: 300\n"
        "    context:\n"
        f"      marks: {marks}\n"
    )
    env = clean_env(IRONFLOW_API_KEY=API_KEY, IRONFLOW_LOG="info")
    servers = [ServerProcess(tmp_path, env=env) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: s.start(), servers))
    try:  # both start-up ticks are done: each server announces itself after its own
        pages = []
        for server in servers:
            with server.client() as c:
                pages.append(c.get("/metrics").text)
    finally:
        for server in servers:
            server.stop()  # drains: every started run finishes
    lines = marks.read_text().split("\n")[:-1]
    instants = sorted(line.split()[0] for line in lines)
    assert instants == [at.strftime("%Y-%m-%dT%H:%M:%SZ") for at in due], lines

    async def stored() -> list:
        store = JsonStore(tmp_path / "store")
        try:
            return [await store.get_run(s.id) for s in (await store.list_runs()).runs]
        finally:
            await store.aclose()

    runs = trio.run(stored)
    assert sorted(r.id for r in runs) == sorted(occurrence_run_id("recent", at) for at in due)
    assert all(r.status is RunStatus.SUCCESS for r in runs)
    fired = [sample(p, "ironflow_scheduler_decisions_total", outcome="fired") for p in pages]
    lost = [sample(p, "ironflow_scheduler_decisions_total", outcome="not_claimed")
            for p in pages]
    assert sum(fired) == 3 and sum(lost) == 3, (fired, lost)
    logs = "\n".join(s.stderr() for s in servers)
    assert logs.count("schedule 'recent': started run") == 3
    report = (f"cron: {minutes} * * * *; fired per process: {fired}; not_claimed per "
              f"process: {lost}\nmarks (instant, pid of the serve that ran it):\n"
              + "\n".join(lines))
    (tmp_path / "report.txt").write_text(report + "\n\n" + logs)


def test_schedules_command_lists_next_occurrences_and_last_run(tmp_path: Path):
    flows = write_flows(tmp_path)
    (tmp_path / "ironflow.yaml").write_text(
        f"flows_dir: {flows}\n"
        "schedules:\n"
        "  nightly:\n"
        "    flow: hello.lua\n"
        '    cron: "30 2 * * *"\n'
        "    timezone: Europe/Berlin\n"
        "    context: {name: night}\n"
    )
    env = clean_env()
    proc = run_cli(["schedules", "--format", "json", "--store-dir", str(tmp_path / "store")],
                   cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    import json

    (entry,) = json.loads(proc.stdout)["schedules"]
    assert entry["name"] == "nightly" and entry["timezone"] == "Europe/Berlin"
    assert len(entry["next"]) == 3 and entry["last_run"] is None
    text = run_cli(["schedules", "--store-dir", str(tmp_path / "store")], cwd=tmp_path, env=env)
    assert text.returncode == 0 and "nightly" in text.stdout and "30 2 * * *" in text.stdout
    (tmp_path / "ironflow.yaml").write_text(
        f"flows_dir: {flows}\nschedules:\n  bad:\n    flow: hello.lua\n    cron: \"0 25 * * *\"\n")
    bad = run_cli(["schedules"], cwd=tmp_path, env=env)
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: schedule 'bad': invalid cron expression")
    assert "Traceback" not in bad.stderr
    serve = run_cli(["serve", "--port", "0"], cwd=tmp_path,
                    env=clean_env(IRONFLOW_API_KEY=API_KEY))
    assert serve.returncode == 1
    assert "Error: schedule 'bad': invalid cron expression" in serve.stderr


