"""Reading settings from the environment with the contract's strictness (CLI-14).

Boolean and admission variables are strict: an invalid value is a
``ConfigError``, never a silent default. Byte-size and Lua limits fall back to
their defaults when invalid (Lua limits: ``0`` disables).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

from ironflow_core.errors import ConfigError


def strict_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(f"{name} must be either 'true' or 'false'")


def strict_non_negative_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        raise ConfigError(f"{name} must be a non-negative integer")
    return int(text)


def lenient_positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """Byte limits and similar: invalid or zero silently means the default."""
    value = env.get(name)
    if value is None:
        return default
    text = value.strip()
    if not text.isdigit() or int(text) == 0:
        return default
    return int(text)


def lenient_limit(env: Mapping[str, str], name: str, default: int) -> int:
    """Lua limits: invalid means default, ``0`` disables (returned as 0)."""
    value = env.get(name)
    if value is None:
        return default
    text = value.strip()
    if not text.isdigit():
        return default
    return int(text)


@attrs.frozen
class LuaLimits:
    """Per Lua state limits (DSL-92); 0 disables a limit."""

    max_instructions: int = 5_000_000
    max_seconds: int = 10
    max_memory_bytes: int = 134_217_728
    hook_interval: int = 10_000
    gc_after_execution: bool = True
    max_conversion_depth: int = 64
    max_conversion_nodes: int = 100_000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LuaLimits:
        gc_text = env.get("IRONFLOW_LUA_GC_AFTER_EXECUTION")
        return cls(
            max_instructions=lenient_limit(env, "IRONFLOW_LUA_MAX_INSTRUCTIONS", 5_000_000),
            max_seconds=lenient_limit(env, "IRONFLOW_LUA_MAX_SECONDS", 10),
            max_memory_bytes=lenient_limit(env, "IRONFLOW_LUA_MAX_MEMORY_BYTES", 134_217_728),
            hook_interval=lenient_positive_int(env, "IRONFLOW_LUA_HOOK_INTERVAL", 10_000),
            gc_after_execution=gc_text != "false",
            max_conversion_depth=lenient_positive_int(env, "IRONFLOW_MAX_CONVERSION_DEPTH", 64),
            max_conversion_nodes=lenient_positive_int(
                env, "IRONFLOW_MAX_CONVERSION_NODES", 100_000
            ),
        )


@attrs.frozen
class EngineLimits:
    """Per-run engine limits (ENG-15, ENG-25, ENG-120)."""

    max_concurrent_tasks: int
    max_run_seconds: int | None = None
    max_task_output_bytes: int = 2_097_152

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, config_concurrency: int | None = None
    ) -> EngineLimits:
        concurrency = strict_non_negative_int(env, "IRONFLOW_MAX_CONCURRENT_TASKS")
        if concurrency is None:
            concurrency = config_concurrency
        if concurrency is None:
            concurrency = os.cpu_count() or 1
        run_seconds = strict_non_negative_int(env, "IRONFLOW_MAX_RUN_SECONDS")
        return cls(
            max_concurrent_tasks=max(1, concurrency),
            max_run_seconds=run_seconds or None,
            max_task_output_bytes=lenient_positive_int(
                env, "IRONFLOW_MAX_TASK_OUTPUT_BYTES", 2_097_152
            ),
        )


def env_allowlist(env: Mapping[str, str]) -> frozenset[str] | None:
    """``IRONFLOW_ENV_ALLOWLIST`` (DSL-62): ``None`` = every name readable."""
    value = env.get("IRONFLOW_ENV_ALLOWLIST")
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def read_env_var(env: Mapping[str, str], name: str) -> str | None:
    """``env(key)`` as seen by Lua: honours the allowlist."""
    allowed = env_allowlist(env)
    if allowed is not None and name not in allowed:
        return None
    return env.get(name)


def is_server_secret(name: str) -> bool:
    """A setting the server holds as a credential, never handed to a flow's programs.

    ``IRONFLOW_API_KEY``, any other ``IRONFLOW_*`` name that says it is a key,
    secret, token or password, and any ``*_SECRET`` name (how webhook
    signature secrets are named, e.g. ``GITHUB_WEBHOOK_SECRET``).
    """
    upper = name.upper()
    if upper.endswith("_SECRET"):
        return True
    return upper.startswith("IRONFLOW_") and any(
        word in upper for word in ("KEY", "SECRET", "TOKEN", "PASSWORD")
    )


def child_process_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a node's child process inherits from the run.

    The same names ``env()`` may read (``IRONFLOW_ENV_ALLOWLIST``, DSL-62),
    minus the server's own secrets.
    """
    allowed = env_allowlist(env)
    return {
        name: value
        for name, value in env.items()
        if (allowed is None or name in allowed) and not is_server_secret(name)
    }
