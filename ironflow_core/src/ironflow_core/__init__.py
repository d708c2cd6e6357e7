"""IronFlow: Lua-defined workflows on a trio engine, extended through pluggy plugins.

The public surface for plugin authors and embedders lives here. A node
plugin needs nothing else from the core: ``NodeSpec`` and ``hookimpl`` to
register, ``NodeContext`` for the step, the config wrappers (``lenient``,
``run_required``, ``Interpolated``, the ``*Param`` aliases, ``ABSENT``), the
params readers, the errors, ``FsRoots`` for confined file access and a few
upstream-compatible helpers (``json_dumps``, ``format_seconds``, redaction,
interpolation of nested values). Store plugins use ``ironflow_core.storekit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ironflow_core._version import __version__
from ironflow_core.conditions import parse_rust_f64, resolve_path
from ironflow_core.configs import Interpolated, lenient, run_required
from ironflow_core.context import NodeContext
from ironflow_core.errors import (
    FlowLoadError,
    FlowProblem,
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
from ironflow_core.interpolate import interpolate_deep
from ironflow_core.jsonutil import dumps as json_dumps
from ironflow_core.jsonutil import format_seconds, loads_strict
from ironflow_core.model import (
    Event,
    EventType,
    FlowDefinition,
    ProcessEvent,
    ProcessEventType,
    RunRecord,
    RunStatus,
    StepDefinition,
    StepSpec,
    TaskRecord,
    TaskStatus,
)
from ironflow_core.params import (
    ABSENT,
    Absent,
    BoolParam,
    CountParam,
    JsonValue,
    NumberParam,
    lenient_bool,
    lenient_float,
    lenient_u64,
    required_str,
    source_value,
    strict_bool,
    strict_float,
    strict_u64,
)
from ironflow_core.redact import redact_url, redact_urls
from ironflow_core.regular_files import (
    FileTooLargeError,
    NotRegularFileError,
    read_bounded,
    read_regular,
)
from ironflow_core.regular_files import open_regular as open_regular_file
from ironflow_core.settings import child_process_env, lenient_positive_int
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
    node_from_module,
)

if TYPE_CHECKING:
    from ironflow_core.services import RunServices


def __getattr__(name: str) -> Any:
    """``RunServices`` is imported on first use: only type annotations need it."""
    if name == "RunServices":
        from ironflow_core.services import RunServices

        return RunServices
    raise AttributeError(f"module 'ironflow_core' has no attribute {name!r}")


__all__ = [
    "ABSENT",
    "Absent",
    "BoolParam",
    "CommandSpec",
    "CountParam",
    "Event",
    "EventType",
    "FileTooLargeError",
    "FlowDefinition",
    "FlowLoadError",
    "FlowProblem",
    "FlowSource",
    "FlowValidationError",
    "FsRoots",
    "HeaderSpec",
    "Interpolated",
    "IronflowError",
    "JsonValue",
    "LoadOptions",
    "LoaderSpec",
    "NodeContext",
    "NodeError",
    "NodeFailure",
    "NodeRef",
    "NodeSpec",
    "NotRegularFileError",
    "NumberParam",
    "ProcessEvent",
    "ProcessEventType",
    "QueueSettings",
    "QueueSpec",
    "RouteSpec",
    "RunObserver",
    "RunRecord",
    "RunServices",
    "RunStatus",
    "StateStore",
    "StepDefinition",
    "StepSpec",
    "StoreError",
    "StoreSettings",
    "StoreSpec",
    "TaskRecord",
    "TaskStatus",
    "__version__",
    "child_process_env",
    "format_seconds",
    "hookimpl",
    "interpolate_deep",
    "json_dumps",
    "lenient",
    "lenient_bool",
    "lenient_float",
    "lenient_positive_int",
    "lenient_u64",
    "loads_strict",
    "node_from_module",
    "open_confined_dir",
    "open_confined_parent",
    "open_regular_file",
    "parse_rust_f64",
    "read_bounded",
    "read_regular",
    "redact_url",
    "redact_urls",
    "required_str",
    "resolve_path",
    "run_required",
    "source_value",
    "split_leaf",
    "strict_bool",
    "strict_float",
    "strict_u64",
]
