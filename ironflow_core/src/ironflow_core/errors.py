"""One exception hierarchy for the whole engine.

Messages are written for the person who wrote the flow: they name the flow
file, the line, the step and the field when those are known, and never carry a
Python traceback. The CLI prints ``Error: <message>``; the API maps the store
errors onto HTTP statuses.

    IronflowError
     ├── FlowLoadError            the flow file could not be evaluated / read
     ├── FlowValidationError      planning found errors (``Invalid flow: a; b``)
     ├── ConfigError              a setting (env var, ironflow.yaml, CLI flag) is invalid
     ├── PluginError
     │    └── PluginConflictError two plugins claim one name
     ├── StoreError               anything a state store raises
     │    ├── InvalidInputError   bad run id, bad cursor           (HTTP 400)
     │    ├── RunNotFoundError                                     (HTTP 404)
     │    ├── RunConflictError    duplicate id, live lease         (HTTP 409)
     │    │    └── LeaseLostError a fenced write from an owner that lost its lease
     │    ├── StoreCorruptionError a record on disk is damaged     (HTTP 500)
     │    └── StoreUnavailableError the backend cannot be reached  (HTTP 500)
     └── NodeError                a controlled step failure (retried, recoverable)
          └── NodeFailure         a failure that still publishes an output (ENG-80)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class IronflowError(Exception):
    """Base of every error the engine raises on purpose."""

    @property
    def message(self) -> str:
        return str(self)


class FlowLoadError(IronflowError):
    """A flow source could not be read or evaluated.

    ``path`` is the flow file (or ``None`` for inline sources), ``line`` the
    line Lua reported, ``step``/``field`` where the problem was found.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        step: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.step = step
        self.field = field


class FlowValidationError(IronflowError):
    """Planning found one or more errors; no run state was written."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("Invalid flow: " + "; ".join(self.errors))


class ConfigError(IronflowError):
    """A setting is invalid (strict env parsing, config file, CLI value)."""


class PluginError(IronflowError):
    """A plugin could not be loaded or returned something unusable."""


class PluginConflictError(PluginError):
    """Two plugins registered the same node or store name."""


class StoreError(IronflowError):
    """Base of every state-store failure."""


class InvalidInputError(StoreError):
    """Input that can be rejected before touching storage (run id, cursor)."""


class RunNotFoundError(StoreError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run '{run_id}' not found")
        self.run_id = run_id


class RunConflictError(StoreError):
    """The run already exists, or another owner holds it."""


class LeaseLostError(RunConflictError):
    """A write carried an owner token that no longer holds the run's lease (fencing).

    The writer must stop: another process has taken the run over, or it was
    reconciled or deleted meanwhile.
    """


class StoreCorruptionError(StoreError):
    """Stored data is damaged; it is reported, never treated as absent."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached or failed mid-operation."""


class NodeError(IronflowError):
    """A controlled step failure: the task fails, retries and recovery apply."""


class NodeFailure(NodeError):
    """A step failure that still carries an output (shell exit code, schema errors).

    The output of the final attempt is stored on the task, published into the
    context at the phase barrier and handed to an ``on_error`` handler as
    ``_error_output`` (ENG-82).
    """

    def __init__(self, message: str, output: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.output = dict(output)
