"""What ``ironflow validate`` and ``POST /flows/validate`` report: every problem at once.

The loader, run in validation mode, collects what it finds instead of
stopping at the first problem; the planner adds its own errors; on top, each
step's config is checked against its node's config class: a key the class does
not declare is a warning naming the nearest declared key (``outptu_key`` ->
``output_key``), a lenient field whose value has the wrong type (so the node
uses its default) is a warning, and a field the node cannot run without is an
error.
"""

from __future__ import annotations

import attrs

from ironflow_core import jsonutil
from ironflow_core.configs import check_config
from ironflow_core.engine.planner import plan_flow
from ironflow_core.errors import FlowValidationError
from ironflow_core.gc_pause import paused_gc
from ironflow_core.model import Diagnostic, FlowDefinition
from ironflow_core.registry import Registry

UNKNOWN_CONFIG_KEY = "unknown_config_key"
LENIENT_DEFAULT_USED = "lenient_default_used"


@attrs.frozen
class ValidationReport:
    """Errors and warnings of one flow, as ``validate`` and the API show them."""

    errors: tuple[str, ...]
    warnings: tuple[Diagnostic, ...]

    def failed(self, *, strict: bool) -> bool:
        """True with errors, or with warnings under ``--strict``."""
        return bool(self.errors) or (strict and bool(self.warnings))


def validate_definition(flow: FlowDefinition, registry: Registry) -> ValidationReport:
    """Plan ``flow`` for validation and check every step config against its class."""
    with paused_gc():
        return _validate(flow, registry)


def _validate(flow: FlowDefinition, registry: Registry) -> ValidationReport:
    errors: list[str] = []
    try:
        plan_flow(flow, registry)
    except FlowValidationError as exc:
        errors.extend(exc.errors)
    warnings = list(flow.warnings)
    for step in flow.steps:
        spec = registry.nodes.get(step.node_type)
        if spec is None:
            continue
        findings = check_config(spec.config, step.config)
        for key in findings.missing:
            errors.append(f"Step '{step.name}' ({step.node_type}): required field '{key}' "
                          "is missing")
        for key, near in findings.unknown:
            hint = f"; did you mean '{near}'?" if near else ""
            warnings.append(Diagnostic(
                code=UNKNOWN_CONFIG_KEY, line=step.line, step=step.name,
                message=f"Step '{step.name}' ({step.node_type}): unknown config key "
                        f"'{key}'{hint}",
            ))
        for key, default in findings.fallbacks:
            warnings.append(Diagnostic(
                code=LENIENT_DEFAULT_USED, line=step.line, step=step.name,
                message=f"Step '{step.name}' ({step.node_type}): config key '{key}' has the "
                        f"wrong type; the node uses its default {jsonutil.dumps(default)}",
            ))
    return ValidationReport(errors=tuple(errors), warnings=tuple(warnings))
