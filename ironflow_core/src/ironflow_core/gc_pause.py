"""Pausing Python's cyclic garbage collector while a flow is built.

Loading and planning a flow allocate tens of thousands of small containers
(the steps' dicts, tuples, definitions, structured configs) that form no
reference cycles and all stay alive with the flow. Each allocation burst
triggers collections that walk those young objects again and again, which
costs a 5,000-step flow about as much as reading it. Inside
:func:`paused_gc` no collection starts; the next allocation after it looks at
the new objects once.

The pause is process-wide (``gc.disable``), so it is counted: with several
threads loading at once, the collector comes back when the last one leaves,
and only if it was on when the first one entered.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic collection while the body runs (reference counting still frees everything)."""
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()
