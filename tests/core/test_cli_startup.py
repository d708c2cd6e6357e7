"""The console script's start-up GC pause: on while it starts, never left on."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

import ironflow_core.cli

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import gc, sys
from ironflow_core.cli import shared
seen = []
prepare = shared.State.prepare
def spy(self):
    seen.append((gc.isenabled(), gc.get_freeze_count() > 0))
    return prepare(self)
shared.State.prepare = spy
paused = []
start = shared.start_startup_gc_pause
def spy_start():
    start()
    paused.append(gc.isenabled())
shared.start_startup_gc_pause = spy_start
sys.argv = ["ironflow", "validate", sys.argv[1]]
from ironflow_core.cli import main
try:
    main()
finally:
    print("paused", paused, "command", seen[0], "after", gc.isenabled(), file=sys.stderr)
"""


def test_start_up_runs_without_gc_and_the_command_with_it(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "examples" / "hello.lua")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Validation: OK" in proc.stdout
    assert "paused [False] command (True, True) after True" in proc.stderr


def test_a_command_that_never_starts_still_turns_the_gc_back_on(monkeypatch):
    assert gc.isenabled()
    monkeypatch.setattr(sys, "argv", ["ironflow", "--version"])
    with pytest.raises(SystemExit):
        ironflow_core.cli.main()
    assert gc.isenabled()
    monkeypatch.setattr(sys, "argv", ["ironflow", "no-such-command"])
    with pytest.raises(SystemExit):
        ironflow_core.cli.main()
    assert gc.isenabled()
