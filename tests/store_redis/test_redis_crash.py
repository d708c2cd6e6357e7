"""Issue 14 proof on Redis, short and seeded: SIGKILL runs, and kill Redis itself mid-run.

The full storm is ``bench/crash.py``; this runs the same code with a few kills.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .conftest import REDIS_SERVER  # noqa: F401  (skips cleanly without redis-server)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crash.py"


def load_crash():
    spec = importlib.util.spec_from_file_location("bench_crash_redis", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


crash = load_crash()


def test_killed_runs_resume_to_the_uninterrupted_result_on_redis(redis_url, tmp_path):
    target = crash.StoreTarget("redis", url=redis_url, prefix="crash-test:")
    counts = crash.campaign(target, tmp_path, kills=3, per_run=3, seed=12)
    assert counts.errors == []
    assert counts.kills == 3 and counts.resumes >= 1
    assert (counts.wrong_contexts, counts.duplicated_completions, counts.torn_files) == (0, 0, 0)


def test_redis_killed_and_restarted_mid_run_stalls_cleanly_and_resumes(tmp_path):
    import pytest

    if crash.shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    redis = crash.RedisProcess(tmp_path / "redis")
    redis.start()
    try:
        report = crash.redis_killed_mid_run(redis, tmp_path / "work", seed=6)
    finally:
        redis.kill()
    assert report["exit"] == 1 and report["one_error_line"], report
    assert report["resumed_exit"] == 0 and report["context_equal"], report
