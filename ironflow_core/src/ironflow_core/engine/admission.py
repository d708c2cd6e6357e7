"""The process-wide limit on runs executing at once (``IRONFLOW_MAX_CONCURRENT_WORKFLOWS``).

A run beyond the limit waits, recorded as ``pending``, instead of failing.
Child runs of subworkflow nodes never take a slot, so a parent holding one
can never deadlock waiting for its children. The limiter lives for one trio
run (a server process, a test, a ``trio.run`` of the CLI).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import trio

from ironflow_core.settings import strict_non_negative_int

_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("ironflow_workflows")


def workflow_limit(env: Mapping[str, str]) -> int:
    """Runs allowed at once: the setting, or one per CPU when it is unset or 0."""
    value = strict_non_negative_int(env, "IRONFLOW_MAX_CONCURRENT_WORKFLOWS")
    if not value:
        return os.cpu_count() or 1
    return value


def workflow_slots(env: Mapping[str, str]) -> trio.CapacityLimiter:
    """The limiter shared by every run of the current trio run."""
    try:
        return _limiter.get()
    except LookupError:
        limiter = trio.CapacityLimiter(workflow_limit(env))
        _limiter.set(limiter)
        return limiter
