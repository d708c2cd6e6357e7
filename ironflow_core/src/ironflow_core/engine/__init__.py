"""The engine: plan a flow, then execute it on trio against a state store."""

from __future__ import annotations

from ironflow_core.engine.executor import FinalStatusError, RunExecutor
from ironflow_core.engine.planner import Plan, plan_flow
from ironflow_core.engine.resume import open_resume, prepare_resume
from ironflow_core.engine.run import execute, prepare_run

__all__ = [
    "FinalStatusError", "Plan", "RunExecutor", "execute", "open_resume", "plan_flow",
    "prepare_resume", "prepare_run",
]
