"""Reading settings from the environment with the contract's strictness (CLI-14).

Boolean and admission variables are strict: an invalid value is a
``ConfigError``, never a silent default. Byte-size and Lua limits fall back to
their defaults when invalid (Lua limits: ``0`` disables).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

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
class SubworkflowLimits:
    """How far subworkflows may go from one root run (0 or invalid: the default)."""

    max_depth: int = 8
    """``IRONFLOW_MAX_SUBWORKFLOW_DEPTH``: nesting levels below the root run."""
    max_runs: int = 1024
    """``IRONFLOW_MAX_SUBWORKFLOW_RUNS``: child runs one root run may start, all levels."""
    max_concurrent: int = 16
    """``IRONFLOW_MAX_CONCURRENT_SUBWORKFLOWS``: process-wide, child subtrees running at once."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SubworkflowLimits:
        return cls(
            max_depth=lenient_positive_int(env, "IRONFLOW_MAX_SUBWORKFLOW_DEPTH", 8),
            max_runs=lenient_positive_int(env, "IRONFLOW_MAX_SUBWORKFLOW_RUNS", 1024),
            max_concurrent=lenient_positive_int(env, "IRONFLOW_MAX_CONCURRENT_SUBWORKFLOWS", 16),
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


SERVER_SECRET_ENV = frozenset({"IRONFLOW_API_KEY", "REDIS_URL"})
"""Settings the process itself uses as secrets: never readable by flows, whatever
``IRONFLOW_ENV_ALLOWLIST`` says (the server also hides its webhook secrets, see
:func:`without_env_names`)."""


def without_env_names(env: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """A copy of ``env`` without ``names`` (secrets that only the server may read)."""
    hidden = set(names)
    return {key: value for key, value in env.items() if key not in hidden}


def read_env_var(env: Mapping[str, str], name: str) -> str | None:
    """``env(key)`` as seen by Lua: honours the allowlist; server secrets read as nil."""
    if name in SERVER_SECRET_ENV:
        return None
    allowed = env_allowlist(env)
    if allowed is not None and name not in allowed:
        return None
    return env.get(name)
