"""IronFlow: Lua-defined workflows on a trio engine, extended through pluggy plugins.

The public surface for plugin authors and embedders lives here.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ironflow_core.errors import (
    FlowLoadError,
    FlowValidationError,
    IronflowError,
    NodeError,
    NodeFailure,
    StoreError,
)
from ironflow_core.hookspecs import hookimpl
from ironflow_core.model import (
    Event,
    EventType,
    FlowDefinition,
    RunRecord,
    RunStatus,
    StepSpec,
    TaskRecord,
    TaskStatus,
)
from ironflow_core.specs import (
    CommandSpec,
    FlowSource,
    LoaderSpec,
    LoadOptions,
    NodeSpec,
    QueueSettings,
    QueueSpec,
    RunObserver,
    StateStore,
    StoreSettings,
    StoreSpec,
)

__all__ = [
    "CommandSpec",
    "Event",
    "EventType",
    "FlowDefinition",
    "FlowLoadError",
    "FlowSource",
    "FlowValidationError",
    "IronflowError",
    "LoadOptions",
    "LoaderSpec",
    "NodeError",
    "NodeFailure",
    "NodeSpec",
    "QueueSettings",
    "QueueSpec",
    "RunObserver",
    "RunRecord",
    "RunStatus",
    "StateStore",
    "StepSpec",
    "StoreError",
    "StoreSettings",
    "StoreSpec",
    "TaskRecord",
    "TaskStatus",
    "__version__",
    "hookimpl",
]
