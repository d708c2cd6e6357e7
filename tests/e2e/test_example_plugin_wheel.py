"""The example plugin as a user gets it: built wheels, a fresh venv, the ``ironflow`` script.

Builds the ironflow-core and ironflow-nodes-example wheels with ``uv build``,
installs both into a new virtual environment (core's dependencies come from
PyPI or uv's cache), and runs a flow that uses the plugin's nodes. Nothing
from the workspace is importable there, so this proves the entry point alone
wires the plugin in. Set ``IRONFLOW_SKIP_WHEEL_TEST=1`` to skip it offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "examples" / "plugin" / "flows" / "publish.lua"

pytestmark = pytest.mark.skipif(
    os.environ.get("IRONFLOW_SKIP_WHEEL_TEST") == "1",
    reason="IRONFLOW_SKIP_WHEEL_TEST=1",
)


def _env() -> dict[str, str]:
    """The caller's environment minus anything tying Python to the workspace venv."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")
    return {k: v for k, v in os.environ.items()
            if k not in drop and not k.startswith("IRONFLOW_")}


def _run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build wheels (pip install uv)"
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    for package in ("ironflow-core", "ironflow-nodes-example"):
        _run([uv, "build", "--wheel", "--package", package, "--out-dir", str(dist)], ROOT)
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["ironflow_core", "ironflow_nodes_example"]
    venv = work / "venv"
    _run([uv, "venv", "--python", sys.executable, str(venv)], work)
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--python", str(python), *map(str, wheels)], work, timeout=300)
    return venv


def test_installed_wheels_pick_up_the_plugin_through_its_entry_point(venv: Path, tmp_path: Path):
    ironflow = str(venv / "bin" / "ironflow")
    plugins = json.loads(_run([ironflow, "plugins", "--format", "json"], tmp_path).stdout)
    by_name = {p["name"]: p for p in plugins}
    assert by_name["nodes-example"] == {
        "name": "nodes-example",
        "distribution": "ironflow-nodes-example",
        "version": "0.1.0",
        "status": "active",
        "provides": ["node:slugify", "node:word_count"],
    }
    # a minimal install: the sibling distributions are not there
    assert not {"nodes-http", "nodes-shell", "nodes-fs", "store-redis"} & set(by_name)


def test_installed_ironflow_runs_a_flow_using_the_example_nodes(venv: Path, tmp_path: Path):
    ironflow = str(venv / "bin" / "ironflow")
    context = {"title": "Crème Brûlée, 2 ways!",
               "body": "Two ways to make it.\nBoth are easy; both are good."}
    proc = _run([ironflow, "run", str(FLOW), "--format", "json", "--context",
                 json.dumps(context), "--store-dir", str(tmp_path / "runs")], tmp_path)
    record = json.loads(proc.stdout)
    assert record["status"] == "success"
    assert record["ctx"]["slug"] == "creme-brulee-2-ways"
    assert record["ctx"]["word_count"] == 11
    assert record["ctx"]["summary"] == "/articles/creme-brulee-2-ways: 11 words, 2 lines"
    assert record["tasks"]["stats"]["output"]["word_count_top"] == [
        {"word": "are", "count": 2}, {"word": "both", "count": 2}, {"word": "easy", "count": 1},
    ]
    stored = _run([ironflow, "inspect", record["id"], "--store-dir", str(tmp_path / "runs")],
                  tmp_path)
    assert json.loads(stored.stdout)["ctx"]["slug"] == "creme-brulee-2-ways"
