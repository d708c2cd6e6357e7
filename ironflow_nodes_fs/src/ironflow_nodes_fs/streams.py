"""Copying bytes off the trio loop, a slice at a time, with a byte budget.

Each slice (up to 1 MiB) runs in one worker thread, so a large copy costs a
few dozen thread hops rather than thousands, and a cancelled step stops at the
next slice boundary instead of abandoning a thread that keeps writing. The
budget is enforced on bytes actually read: a source that yields more than it
promised (a special file, a ZIP entry lying about its size) is cut off one
chunk past the limit, never buffered whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from ironflow_core import NodeError
from ironflow_nodes_fs.safeio import os_text

CHUNK = 65536
SLICE = 1 << 20


class BudgetExceeded(Exception):
    """The source produced more bytes than the budget allows."""


def _pump(
    read: Callable[[int], bytes], write: Callable[[bytes], Any], budget: int
) -> tuple[int, bool]:
    moved = 0
    while moved < SLICE:
        want = min(CHUNK, budget - moved + 1)
        chunk = read(want)
        if not chunk:
            return moved, True
        moved += len(chunk)
        if moved > budget:
            raise BudgetExceeded
        write(chunk)
    return moved, False


async def copy_bounded(
    read: Callable[[int], bytes],
    write: Callable[[bytes], Any],
    budget: int,
    exceeded: str,
    failed: str,
) -> int:
    """Copy until end of input; ``NodeError(exceeded)`` past ``budget`` bytes.

    An OS error on either side (a full disk) becomes ``NodeError("<failed>: <os error>")``.
    """
    total = 0
    while True:
        try:
            moved, finished = await trio.to_thread.run_sync(_pump, read, write, budget - total)
        except BudgetExceeded:
            raise NodeError(exceeded) from None
        except OSError as error:
            raise NodeError(f"{failed}: {os_text(error)}") from None
        total += moved
        if finished:
            return total
