"""The ``schedules:`` map of ironflow.yaml, checked completely at start-up.

A schedule that could only fail at 02:00 is one nobody hears about until
02:00, so every problem (an unknown field, a bad cron expression, an unknown
zone, a flow outside ``flows_dir`` or one that does not load, a reserved
context key) is a ``ConfigError`` naming the schedule and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from ironflow_core.errors import ConfigError
from ironflow_core.schedules.timing import CronError, check_cron

MAX_SCHEDULES = 256
MAX_NAME_BYTES = 48
MAX_FLOW_BYTES = 1024
MAX_CRON_BYTES = 256
MAX_ZONE_BYTES = 128
MAX_CONTEXT_BYTES = 65_536
DEFAULT_GRACE_SECONDS = 300
MIN_GRACE_SECONDS = 60
MAX_GRACE_SECONDS = 604_800
RESERVED_CONTEXT_KEYS = ("_schedule", "_scheduled_at", "_flow_dir")
"""Set by the scheduler on every scheduled run; a schedule's context may not define them."""
FIELDS = ("flow", "cron", "timezone", "grace_seconds", "context")


@attrs.frozen
class Schedule:
    """One validated schedule; ``path`` is the flow file resolved inside ``flows_dir``."""

    name: str
    flow: str
    path: str
    cron: str
    timezone: str = "UTC"
    grace_seconds: int = DEFAULT_GRACE_SECONDS
    context: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's time zone."""
        return ZoneInfo(self.timezone)


def _nonempty_bounded_str(name: str, field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"schedule '{name}': '{field}' must be a non-empty string")
    if len(value.encode("utf-8")) > limit:
        raise ConfigError(f"schedule '{name}': '{field}' must not exceed {limit} bytes")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError("schedules: every schedule name must be a non-empty string")
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise ConfigError(f"schedule '{value[:60]}': the name must not exceed "
                          f"{MAX_NAME_BYTES} bytes")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConfigError(f"schedule {value!r}: the name must not contain control characters")
    return value


def _zone(name: str, value: Any) -> str:
    if value is None:
        return "UTC"
    text = _nonempty_bounded_str(name, "timezone", value, MAX_ZONE_BYTES)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"schedule '{name}': unknown time zone '{text}' (use an IANA name such as "
            "'Europe/Berlin' or 'UTC')"
        ) from None
    return text


def _grace(name: str, value: Any) -> int:
    if value is None:
        return DEFAULT_GRACE_SECONDS
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"schedule '{name}': 'grace_seconds' must be an integer")
    if not MIN_GRACE_SECONDS <= value <= MAX_GRACE_SECONDS:
        raise ConfigError(f"schedule '{name}': 'grace_seconds' must be between "
                          f"{MIN_GRACE_SECONDS} and {MAX_GRACE_SECONDS}")
    return value


def _context(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"schedule '{name}': 'context' must be a map with string keys")
    reserved = sorted(k for k in value if k in RESERVED_CONTEXT_KEYS)
    if reserved:
        raise ConfigError(f"schedule '{name}': 'context' must not define the reserved key "
                          f"'{reserved[0]}' (the scheduler sets "
                          f"{', '.join(RESERVED_CONTEXT_KEYS)})")
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError):
        raise ConfigError(f"schedule '{name}': 'context' must be plain JSON data") from None
    if size > MAX_CONTEXT_BYTES:
        raise ConfigError(f"schedule '{name}': 'context' must not exceed "
                          f"{MAX_CONTEXT_BYTES} bytes as JSON")
    return value


def _flow_path(name: str, flow: str, flows_dir: str | None) -> str:
    from ironflow_core.api.errors import ApiError
    from ironflow_core.api.sources import resolve_flow_file

    if not flows_dir:
        raise ConfigError(f"schedule '{name}': schedules need a flows_dir (set --flows-dir, "
                          "FLOWS_DIR or flows_dir in ironflow.yaml); a schedule's flow is "
                          "resolved inside it")
    try:
        return resolve_flow_file(flows_dir, flow).path
    except ApiError as exc:
        raise ConfigError(f"schedule '{name}': flow '{flow}' is not a file inside flows_dir "
                          f"'{flows_dir}' ({exc})") from None


def parse_schedule(name: Any, raw: Any, flows_dir: str | None) -> Schedule:
    """One schedule of ironflow.yaml, checked field by field (``ConfigError`` naming the schedule)."""
    name = _name(name)
    if not isinstance(raw, dict):
        raise ConfigError(f"schedule '{name}' must be a map with 'flow' and 'cron'")
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise ConfigError(f"schedule '{name}': unknown field '{unknown[0]}' "
                          f"(known: {', '.join(FIELDS)})")
    flow = _nonempty_bounded_str(name, "flow", raw.get("flow"), MAX_FLOW_BYTES)
    cron = _nonempty_bounded_str(name, "cron", raw.get("cron"), MAX_CRON_BYTES)
    try:
        check_cron(cron)
    except CronError as exc:
        raise ConfigError(f"schedule '{name}': invalid cron expression '{cron}': {exc}") from None
    return Schedule(
        name=name,
        flow=flow,
        path=_flow_path(name, flow, flows_dir),
        cron=cron,
        timezone=_zone(name, raw.get("timezone")),
        grace_seconds=_grace(name, raw.get("grace_seconds")),
        context=_context(name, raw.get("context")),
    )


def parse_schedules(raw: Any, flows_dir: str | None, *, registry: Any = None,
                    env: Mapping[str, str] | None = None) -> tuple[Schedule, ...]:
    """Every schedule of the ``schedules`` map; with a registry each flow is loaded too."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError("'schedules' in the config file must be a map of name -> schedule")
    if len(raw) > MAX_SCHEDULES:
        raise ConfigError(f"'schedules' must not declare more than {MAX_SCHEDULES} schedules")
    schedules = tuple(parse_schedule(name, value, flows_dir) for name, value in raw.items())
    if registry is not None:
        for schedule in schedules:
            check_flow_loads(schedule, registry, env or {})
    return schedules


def check_flow_loads(schedule: Schedule, registry: Any, env: Mapping[str, str]) -> None:
    """Load the schedule's flow now, so a broken flow stops start-up instead of failing each tick."""
    from ironflow_core.engine.planner import plan_flow
    from ironflow_core.errors import FlowLoadError, FlowValidationError
    from ironflow_core.loading import load_flow

    try:
        plan_flow(load_flow(schedule.path, registry=registry, env=env), registry)
    except (FlowLoadError, FlowValidationError, OSError) as exc:
        raise ConfigError(f"schedule '{schedule.name}': flow '{schedule.flow}' does not load: "
                          f"{exc}") from None
