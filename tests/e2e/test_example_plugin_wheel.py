"""IronFlow as a user installs it: built wheels, fresh venvs, the ``ironflow`` script.

Builds every wheel with ``uv build --all-packages`` (as the README says), then
installs, into new virtual environments (dependencies come from PyPI or uv's
cache): the example plugin with ironflow-core, and the README's minimal set
(``--find-links dist ironflow-core ironflow-nodes-http``). Nothing from the
workspace is importable there, so this proves the entry points alone wire the
plugins in, and that the extras keep a minimal install minimal. Set
``IRONFLOW_SKIP_WHEEL_TEST=1`` to skip it offline.
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
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build wheels (pip install uv)"
    out = tmp_path_factory.mktemp("wheels") / "dist"
    _run([uv, "build", "--all-packages", "--wheel", "--out-dir", str(out)], ROOT, timeout=300)
    names = sorted(w.name.split("-")[0] for w in out.glob("*.whl"))
    assert names == ["ironflow_core", "ironflow_nodes_example", "ironflow_nodes_fs",
                     "ironflow_nodes_http", "ironflow_nodes_shell", "ironflow_otel",
                     "ironflow_store_redis", "ironflow_ui"]
    return out


def _venv(work: Path, dist: Path, *requirements: str) -> Path:
    uv = shutil.which("uv")
    assert uv
    venv = work / "venv"
    _run([uv, "venv", "--python", sys.executable, str(venv)], work)
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--python", str(python), "--find-links", str(dist),
          *requirements], work, timeout=300)
    return venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> Path:
    return _venv(tmp_path_factory.mktemp("example"), dist, "ironflow-core",
                 "ironflow-nodes-example")


@pytest.fixture(scope="module")
def minimal(tmp_path_factory: pytest.TempPathFactory, dist: Path) -> Path:
    """The README's minimal install."""
    return _venv(tmp_path_factory.mktemp("minimal"), dist, "ironflow-core",
                 "ironflow-nodes-http")


def _fails(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0, proc.stdout
    return proc


def test_minimal_install_has_http_nodes_and_no_api_stack(minimal: Path, tmp_path: Path):
    ironflow = str(minimal / "bin" / "ironflow")
    plugins = {p["name"]: p["status"] for p in json.loads(
        _run([ironflow, "plugins", "--format", "json"], tmp_path).stdout)}
    assert plugins == {"core.lua": "active", "core.stores": "active", "core.nodes": "active",
                       "core.queues": "active", "core.cli": "active", "nodes-http": "active"}
    python = str(minimal / "bin" / "python")
    for module in ("starlette", "hypercorn", "pytest"):
        assert "No module named" in _fails([python, "-c", f"import {module}"], tmp_path).stderr


def test_minimal_install_says_what_to_install(minimal: Path, tmp_path: Path):
    ironflow = str(minimal / "bin" / "ironflow")
    serve = _fails([ironflow, "serve"], tmp_path)
    assert serve.returncode == 1
    assert serve.stderr == ("Error: 'ironflow serve' needs starlette and hypercorn, which are "
                            "not installed. Install them with: pip install "
                            "'ironflow-core[serve]'\n")
    assert "Traceback" not in serve.stderr
    kit = _fails([str(minimal / "bin" / "python"), "-c", "import ironflow_core.store_conformance"],
                 tmp_path)
    assert "pip install 'ironflow-core[testing]'" in kit.stderr
    flow = tmp_path / "flow.lua"
    flow.write_text('local flow = Flow.new("sh")\n'
                    'flow:step("list", nodes.shell_command{ command = "ls" })\nreturn flow\n')
    run = _fails([ironflow, "run", str(flow)], tmp_path)
    assert run.returncode == 1
    assert run.stderr == (f"Error: Unknown node type 'shell_command' at {flow}:2 (step 'list'); "
                          "it is provided by ironflow-nodes-shell: pip install "
                          "ironflow-nodes-shell\n")


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
