"""One exception hierarchy for the whole engine.

Messages are written for the person who wrote the flow: they name the flow
file, the line, the step and the field when those are known, and never carry a
Python traceback. The CLI prints ``Error: <message>``; the API maps the store
errors onto HTTP statuses.

    IronflowError
     ├── FlowLoadError            the flow source could not be read or evaluated
     ├── FlowValidationError      the flow is wrong: every problem the planner found
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

import attrs


class IronflowError(Exception):
    """Base of every error the engine raises on purpose."""

    @property
    def message(self) -> str:
        """The message (``str(exc)``), for callers that read it as a field."""
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


@attrs.frozen
class FlowProblem:
    """One thing wrong with a flow, with where it is when that is known.

    ``message`` is what ``ironflow validate`` lists; ``line``, ``step`` and
    ``field`` (a ``$.path`` into the step config) locate it. ``placed`` says
    the message already names the file and line itself.
    """

    message: str
    line: int | None = None
    step: str | None = None
    field: str | None = None
    placed: bool = False


class FlowValidationError(IronflowError):
    """The flow is wrong: the one error for every problem the planner finds.

    Raised by ``plan_flow`` before any state is written, with every problem
    of the flow (``problems``, their messages in ``errors``). A flow file that
    cannot be read or evaluated (a Lua error, a size limit) is a
    ``FlowLoadError`` instead: there is no flow to find problems in.

    The message is ``Invalid flow: <problem>; <problem>``. A single problem
    that has a line reads as the problem alone, prefixed by its place
    (``flow.lua:3: ...``) unless it names its place itself. ``path``, and the
    ``line``/``step``/``field`` of the first problem, are attributes as on
    ``FlowLoadError``.
    """

    def __init__(self, problems: Sequence[str | FlowProblem], *, path: str | None = None) -> None:
        self.problems = tuple(p if isinstance(p, FlowProblem) else FlowProblem(p)
                              for p in problems)
        self.errors = [p.message for p in self.problems]
        self.path = path
        first = self.problems[0] if self.problems else FlowProblem("")
        self.line, self.step, self.field = first.line, first.step, first.field
        super().__init__(self._text())

    def _text(self) -> str:
        if len(self.problems) == 1 and self.problems[0].line is not None:
            problem = self.problems[0]
            if problem.placed:
                return problem.message
            place = f"{self.path}:{problem.line}" if self.path else f"line {problem.line}"
            return f"{place}: {problem.message}"
        return "Invalid flow: " + "; ".join(self.errors)


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
    """No run has this ID (HTTP 404)."""

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
