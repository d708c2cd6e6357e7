"""Run the installed ``ironflow`` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOWS = Path(__file__).parent / "flows"
IRONFLOW = str(Path(sys.executable).parent / "ironflow")


def ironflow(*args: str, env: dict | None = None, cwd: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IRONFLOW_")}
    full_env["IRONFLOW_PROGRESS"] = "off"
    full_env.update(env or {})
    return subprocess.run([IRONFLOW, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)


def run_json(flow: str, tmp_path: Path, context: dict | None = None,
             env: dict | None = None) -> tuple[int, dict, str]:
    args = ["run", str(FLOWS / flow), "--format", "json", "--store-dir", str(tmp_path / "runs")]
    if context is not None:
        args += ["--context", json.dumps(context)]
    proc = ironflow(*args, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    record = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, record, proc.stderr
