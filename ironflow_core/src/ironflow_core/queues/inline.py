"""The ``inline`` queue: the process that accepts a run executes it (the default).

Nothing travels anywhere; ``shared`` is false, so ``ironflow serve`` and
``ironflow submit`` keep executing runs themselves and ``ironflow worker``
refuses to start.
"""

from __future__ import annotations

from ironflow_core.specs import QueueSettings


class InlineQueue:
    name = "inline"
    shared = False

    async def aclose(self) -> None:
        return None


def open_inline_queue(settings: QueueSettings) -> InlineQueue:
    return InlineQueue()
