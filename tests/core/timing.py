"""Bounds on the work a limited operation does, that a loaded machine cannot break.

A limit is about work: the process's CPU time is the measure, since a busy
machine stretches the wall clock but not the CPU a bomb burns. The wall clock
only has to stay in sight of it (a stuck operation still fails).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bounded(cpu_seconds: float, *, wall_slack: float = 10.0) -> Iterator[None]:
    """Assert that the block used under ``cpu_seconds`` of CPU (and some wall time)."""
    wall, cpu = time.monotonic(), time.process_time()
    yield
    used = time.process_time() - cpu
    elapsed = time.monotonic() - wall
    assert used < cpu_seconds, f"used {used:.2f}s of CPU (bound {cpu_seconds}s)"
    assert elapsed < cpu_seconds + wall_slack, f"took {elapsed:.2f}s"
