"""Issue 14 proof, short and seeded: SIGKILL a 100-step run, resume until done (JSON store).

The full storm (100 kills per store) is ``bench/crash.py``; this runs the same
code with a few kills so it never rots and a regression shows up in the suite.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crash.py"


def load_crash():
    spec = importlib.util.spec_from_file_location("bench_crash", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


crash = load_crash()


def test_killed_runs_resume_to_the_uninterrupted_result_on_the_json_store(tmp_path):
    target = crash.StoreTarget("json", path=tmp_path / "runs")
    counts = crash.campaign(target, tmp_path, kills=3, per_run=3, seed=11)
    assert counts.errors == []
    assert counts.kills == 3 and counts.resumes >= 1
    assert (counts.wrong_contexts, counts.duplicated_completions, counts.torn_files) == (0, 0, 0)


def test_a_disk_that_fills_mid_run_stalls_it_cleanly_and_it_resumes(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    probe = tmp_path / "probe"
    probe.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                      capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    subprocess.run(["umount", str(probe)], check=True)
    report = crash.json_disk_full(tmp_path, seed=5)
    assert report["one_error_line"], report  # one Error: line, never a traceback
    assert report["context_equal"], report
    assert report.get("torn", []) == []
