"""The ``inline`` queue: the process that accepts a run executes it (the default).

Nothing travels anywhere; ``shared`` is false, so ``ironflow serve`` and
``ironflow submit`` keep executing runs themselves and ``ironflow worker``
refuses to start.
"""

from __future__ import annotations

from ironflow_core.specs import QueueSettings


class InlineQueue:
    """The default queue: no queue at all, the accepting process executes the run."""
    name = "inline"
    shared = False

    async def aclose(self) -> None:
        """Nothing to release."""
        return None


def open_inline_queue(settings: QueueSettings) -> InlineQueue:
    """``QueueSpec.open`` of the inline queue."""
    return InlineQueue()
