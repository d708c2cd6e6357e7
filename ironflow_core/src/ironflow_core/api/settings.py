"""Server settings, resolved once at start-up and validated strictly (CLI-13, CLI-14, CLI-70).

Precedence: explicit CLI flag > process environment (dotenv included) >
``ironflow.yaml`` > built-in default. Every invalid value is a ``ConfigError``
raised before the listener is bound, so a misconfigured server never serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ironflow_core.api.webhooks import WebhookConfig, parse_webhooks
from ironflow_core.engine.admission import workflow_limit
from ironflow_core.errors import ConfigError
from ironflow_core.schedules.config import Schedule, parse_schedules
from ironflow_core.settings import (
    FLOWS_DIR,
    MAX_FLOW_SOURCE_BYTES,
    EngineLimits,
    strict_bool,
    strict_non_negative_int,
)

DEFAULT_MAX_BODY = 1_048_576
DEFAULT_HOST = "127.0.0.1"
"""Loopback by default; serving every interface is an explicit ``--host 0.0.0.0``."""
MAX_GRACE_SECONDS = 3600


@attrs.frozen
class ServerSettings:
    """Everything ``ironflow serve`` needs, resolved once from flags, environment and ironflow.yaml."""
    host: str = DEFAULT_HOST
    port: int = 3000
    flows_dir: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    api_key: str | None = None
    allow_unauthenticated: bool = False
    allow_adhoc_flows: bool = True
    cors_origins: tuple[str, ...] = ()
    event_capacity: int = 10_000
    max_list_records: int = 100
    shutdown_grace_seconds: int = 30
    max_concurrent_runs: int = 0
    """0 = unlimited (ENG-121)."""
    max_flow_loads: int = 2
    max_flow_source_bytes: int = MAX_FLOW_SOURCE_BYTES.default
    config_concurrency: int | None = None
    webhooks: Mapping[str, WebhookConfig] = attrs.field(factory=dict)
    metrics_enabled: bool = False
    """``GET /metrics`` is registered (IRONFLOW_METRICS_ENABLED / metrics_enabled)."""
    schedules: tuple[Schedule, ...] = ()

    @property
    def authenticated(self) -> bool:
        """Whether requests must carry the API key."""
        return self.api_key is not None


def _yaml_int(config: Mapping[str, Any], key: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"'{key}' in the config file must be an integer")
    return value


def _yaml_bool(config: Mapping[str, Any], key: str) -> bool | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError(f"'{key}' in the config file must be true or false")
    return value


def _yaml_str(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigError(f"'{key}' in the config file must be a string")
    return str(value)


def _int_setting(cli: int | None, env: Mapping[str, str], var: str,
                 config: Mapping[str, Any], key: str, default: int) -> int:
    if cli is not None:
        return cli
    if var in env:
        text = env[var].strip()
        if not text.isdigit():
            raise ConfigError(f"{var} must be a non-negative integer")
        return int(text)
    value = _yaml_int(config, key)
    return default if value is None else value


def _bool_setting(env: Mapping[str, str], var: str, config: Mapping[str, Any], key: str,
                  default: bool) -> bool:
    if var in env:
        return strict_bool(env, var, default)
    value = _yaml_bool(config, key)
    return default if value is None else value


def _cors(env: Mapping[str, str], config: Mapping[str, Any]) -> tuple[str, ...]:
    """API-4: an exact list, or ``*`` alone."""
    if "IRONFLOW_CORS_ORIGINS" in env:
        origins = [o.strip() for o in env["IRONFLOW_CORS_ORIGINS"].split(",") if o.strip()]
    else:
        raw = config.get("cors_origins")
        if raw is None:
            origins = []
        elif isinstance(raw, list) and all(isinstance(o, str) for o in raw):
            origins = [o.strip() for o in raw if o.strip()]
        else:
            raise ConfigError("'cors_origins' in the config file must be a list of strings")
    if "*" in origins and len(origins) > 1:
        raise ConfigError("CORS origin '*' cannot be combined with explicit origins")
    return tuple(dict.fromkeys(origins))


def _positive(env: Mapping[str, str], var: str, config: Mapping[str, Any], key: str | None,
              default: int) -> int:
    value = strict_non_negative_int(env, var)
    if value is None and key is not None:
        value = _yaml_int(config, key)
    if value is None:
        return default
    if value <= 0:
        raise ConfigError(f"{var} must be greater than zero")
    return value


def resolve_settings(
    env: Mapping[str, str],
    config: Mapping[str, Any],
    *,
    host: str | None = None,
    port: int | None = None,
    flows_dir: str | None = None,
    max_body: int | None = None,
) -> ServerSettings:
    """Resolve and validate every server setting; raises ``ConfigError``."""
    resolved_host = host or env.get("HOST") or _yaml_str(config, "host") or DEFAULT_HOST
    if "PORT" in env and port is None:
        text = env["PORT"].strip()
        if not text.isdigit() or int(text) > 65535:
            raise ConfigError("PORT must be an integer between 0 and 65535")
    resolved_port = _int_setting(port, env, "PORT", config, "port", 3000)
    if not 0 <= resolved_port <= 65535:
        raise ConfigError("port must be an integer between 0 and 65535")
    resolved_flows = flows_dir or FLOWS_DIR.read(env) or _yaml_str(config, "flows_dir")
    body = _int_setting(max_body, env, "MAX_BODY", config, "max_body", DEFAULT_MAX_BODY)
    if body <= 0:
        raise ConfigError("MAX_BODY must be greater than zero")

    key = env.get("IRONFLOW_API_KEY")
    if key is None:
        key = _yaml_str(config, "api_key")
    key = key.strip() if key else None
    allow_unauth = _bool_setting(env, "IRONFLOW_ALLOW_UNAUTHENTICATED_API", config,
                                 "allow_unauthenticated_api", False)
    if not key and not allow_unauth:
        raise ConfigError(
            f"API authentication is required when binding to '{resolved_host}'. Set "
            "IRONFLOW_API_KEY, or set IRONFLOW_ALLOW_UNAUTHENTICATED_API=true to opt out."
        )
    adhoc = _bool_setting(env, "IRONFLOW_ALLOW_ADHOC_FLOWS", config, "allow_adhoc_flows", True)
    if not adhoc and not resolved_flows:
        raise ConfigError(
            "allow_adhoc_flows=false requires a configured flows_dir (set --flows-dir, "
            "FLOWS_DIR or flows_dir in ironflow.yaml); otherwise no flow could ever run"
        )
    metrics = _bool_setting(env, "IRONFLOW_METRICS_ENABLED", config, "metrics_enabled", False)
    event_store = env.get("IRONFLOW_EVENT_STORE") or _yaml_str(config, "event_store") or "memory"
    if event_store != "memory":
        raise ConfigError(f"Unknown event store backend '{event_store}'. Use: memory")
    grace = strict_non_negative_int(env, "IRONFLOW_SHUTDOWN_GRACE_SECONDS")
    if grace is not None and grace > MAX_GRACE_SECONDS:
        raise ConfigError(
            f"IRONFLOW_SHUTDOWN_GRACE_SECONDS must be between 0 and {MAX_GRACE_SECONDS}"
        )
    config_concurrency = _yaml_int(config, "max_concurrent_tasks")
    # Fail now, not on the first request, when an engine limit is malformed.
    EngineLimits.from_env(env, config_concurrency=config_concurrency)
    workflow_limit(env)
    raw_hooks = config.get("webhooks")
    return ServerSettings(
        host=resolved_host,
        port=resolved_port,
        flows_dir=resolved_flows or None,
        max_body=body,
        api_key=key or None,
        allow_unauthenticated=allow_unauth,
        allow_adhoc_flows=adhoc,
        cors_origins=_cors(env, config),
        event_capacity=_positive(env, "IRONFLOW_EVENT_MEMORY_CAPACITY", config,
                                 "event_memory_capacity", 10_000),
        max_list_records=_positive(env, "IRONFLOW_MAX_LIST_RECORDS", config, None, 100),
        shutdown_grace_seconds=30 if grace is None else grace,
        max_concurrent_runs=strict_non_negative_int(env, "IRONFLOW_MAX_CONCURRENT_RUNS") or 0,
        max_flow_loads=_positive(env, "IRONFLOW_MAX_CONCURRENT_FLOW_LOADS", config, None, 2),
        max_flow_source_bytes=MAX_FLOW_SOURCE_BYTES.read(env),
        config_concurrency=config_concurrency,
        webhooks=parse_webhooks(raw_hooks, env) if raw_hooks is not None else {},
        metrics_enabled=metrics,
        schedules=parse_schedules(config.get("schedules"), resolved_flows or None),
    )

