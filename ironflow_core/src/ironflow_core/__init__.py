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
from ironflow_core.fsroots import FsRoots, split_leaf
from ironflow_core.fsroots import open_dir as open_confined_dir
from ironflow_core.fsroots import open_parent as open_confined_parent
from ironflow_core.hookspecs import hookimpl
from ironflow_core.model import (
    Event,
    EventType,
    FlowDefinition,
    ProcessEvent,
    ProcessEventType,
    RunRecord,
    RunStatus,
    StepSpec,
    TaskRecord,
    TaskStatus,
)
from ironflow_core.specs import (
    CommandSpec,
    FlowSource,
    HeaderSpec,
    LoaderSpec,
    LoadOptions,
    NodeRef,
    NodeSpec,
    QueueSettings,
    QueueSpec,
    RouteSpec,
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
    "FsRoots",
    "HeaderSpec",
    "IronflowError",
    "LoadOptions",
    "LoaderSpec",
    "NodeError",
    "NodeFailure",
    "NodeRef",
    "NodeSpec",
    "ProcessEvent",
    "ProcessEventType",
    "QueueSettings",
    "QueueSpec",
    "RouteSpec",
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
    "open_confined_dir",
    "open_confined_parent",
    "split_leaf",
]
