"""``bench/run.py --quick`` keeps working (the benchmarks are not timed tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_quick_mode_runs_every_workload(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick",
                    "--json", str(out)], check=True, capture_output=True, timeout=240)
    data = json.loads(out.read_text())
    names = {w["workload"] for w in data["workloads"]}
    assert len(names) == 12
    assert {"chain:100:template:memory", "layered:100:code:json"} <= names
    for workload in data["workloads"]:
        assert workload["engine_median_s"] > 0 and workload["floor_median_s"] > 0
        assert workload["peak_rss_mib"] > 0
    assert data["start"]["ironflow_run_hello"] > 0


def test_bench_whole_command_quick_mode_runs(tmp_path):
    """``bench/command.py`` (``run.py --command``) on a tiny flow and one store."""
    out = tmp_path / "command.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "command.py"), "--quick",
                    "--stores", "memory", "--parts", "steps,rss",
                    "--json", str(out)], check=True, capture_output=True, timeout=240)
    data = json.loads(out.read_text())
    for shape in ("fanout", "chain"):
        entry = data["steps"]["stores"]["memory"][shape]
        assert len(entry["seconds"]) == 2 and all(t > 0 for t in entry["seconds"])
        assert all(t > 0 for t in entry["cpu_seconds"])
        assert data["steps"]["floor"][shape] != 0
    assert data["rss"]["memory"] > 0
