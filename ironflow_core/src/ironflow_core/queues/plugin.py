"""The core's built-in queue, registered through the same hook a plugin uses."""

from __future__ import annotations

from ironflow_core.hookspecs import hookimpl
from ironflow_core.queues.inline import open_inline_queue
from ironflow_core.specs import QueueSpec


@hookimpl
def ironflow_register_queues() -> list[QueueSpec]:
    """The ``inline`` queue, the default."""
    return [
        QueueSpec(
            name="inline",
            open=open_inline_queue,
            summary="The process that accepts a run executes it (no workers)",
            shared_store=False,
        )
    ]

