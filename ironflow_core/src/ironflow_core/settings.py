"""Reading settings from the environment with the contract's strictness (CLI-14).

Boolean and admission variables are strict: an invalid value is a
``ConfigError``, never a silent default. Byte-size and Lua limits fall back to
their defaults when invalid (Lua limits: ``0`` disables).
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from ironflow_core.errors import ConfigError, NodeError


def strict_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``true``/``false`` exactly; anything else is a ``ConfigError`` naming the variable."""
    value = env.get(name)
    if value is None:
        return default
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(f"{name} must be either 'true' or 'false'")


def strict_non_negative_int(env: Mapping[str, str], name: str) -> int | None:
    """A non-negative integer or None when unset; anything else is a ``ConfigError``."""
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
        """Read the Lua limits (invalid values fall back to the defaults)."""
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
        """Read the subworkflow limits through their schema settings."""
        return cls(
            max_depth=MAX_SUBWORKFLOW_DEPTH.read(env),
            max_runs=MAX_SUBWORKFLOW_RUNS.read(env),
            max_concurrent=MAX_CONCURRENT_SUBWORKFLOWS.read(env),
        )


@functools.cache
def cpu_count() -> int:
    """The machine's CPU count, read once: ``os.cpu_count()`` reads /sys on every call,
    and every run (each API request) asks for its default concurrency."""
    return os.cpu_count() or 1


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
        """Read the per-run limits; concurrency: environment > ironflow.yaml > CPU count."""
        concurrency = strict_non_negative_int(env, "IRONFLOW_MAX_CONCURRENT_TASKS")
        if concurrency is None:
            concurrency = config_concurrency
        if concurrency is None:
            concurrency = cpu_count()
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
"""Settings the process itself uses as secrets (see :func:`is_server_secret`)."""


def is_server_secret(name: str) -> bool:
    """A setting the process holds as a credential: never readable by a flow.

    Neither ``env()`` nor a node's child process sees it, whatever
    ``IRONFLOW_ENV_ALLOWLIST`` says: ``IRONFLOW_API_KEY``, ``REDIS_URL`` and any
    other ``IRONFLOW_*`` name that says it is a key, secret, token or password.
    The server also hides its webhooks' ``secret_env`` variables from the runs
    it starts (:func:`without_env_names`).
    """
    if name in SERVER_SECRET_ENV:
        return True
    upper = name.upper()
    return upper.startswith("IRONFLOW_") and any(
        word in upper for word in ("KEY", "SECRET", "TOKEN", "PASSWORD")
    )


def without_env_names(env: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """A copy of ``env`` without ``names`` (secrets that only the server may read)."""
    hidden = set(names)
    return {key: value for key, value in env.items() if key not in hidden}


def read_env_var(env: Mapping[str, str], name: str) -> str | None:
    """``env(key)`` as seen by Lua: honours the allowlist; server secrets read as nil."""
    if is_server_secret(name):
        return None
    allowed = env_allowlist(env)
    if allowed is not None and name not in allowed:
        return None
    return env.get(name)


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


# --------------------------------------------------------------------------
# The settings schema: one table of every setting read from the environment
# or from ironflow.yaml, so both sources are checked the same way and before
# a command prints anything. Parts of IronFlow that add settings register
# them with ``register_settings``; readers above stay where the value is used.


class SettingValueError(ValueError):
    """Raised by a check; the message says what is allowed."""


Check = Callable[[Any], None]


Reader = Callable[[Mapping[str, str], str, Any], Any]
"""``reader(env, name, default)``: the setting's value with its own strictness and message."""


@attrs.frozen
class Setting:
    """One setting: its environment variable and/or yaml key, what is allowed, how it is read.

    A setting with a ``reader`` is read through ``read(env)`` wherever it is
    used, so its name, default and error message live here once.
    """

    env: str | None = None
    yaml: str | None = None
    check: Check | None = None
    """Raises ``SettingValueError(<what is allowed>)``; None = any value (checked where used)."""
    secret: bool = False
    """Never echo the value in messages."""
    default: Any = None
    """The value when the variable is unset (what ``read`` returns then)."""
    reader: Reader | None = None
    """Parses the environment value (see ``Reader``); a bad one raises ``ConfigError``
    or falls back to ``default``, as the reader decides."""

    def read(self, env: Mapping[str, str]) -> Any:
        """The value of ``env[self.env]`` through the reader, ``default`` when unset."""
        if self.env is None or self.reader is None:
            raise TypeError(f"setting {self.env or self.yaml} has no environment reader")
        return self.reader(env, self.env, self.default)


def _is_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def non_negative_int(value: Any) -> None:
    """Schema check: a non-negative integer."""
    if _is_int(value) is None:
        raise SettingValueError("a non-negative integer")


def limit(value: Any) -> None:
    """Schema check: a Lua limit (a non-negative integer, 0 disables)."""
    if _is_int(value) is None:
        raise SettingValueError("a non-negative integer (0 disables the limit)")


def positive_int(value: Any) -> None:
    """Schema check: a positive integer."""
    number = _is_int(value)
    if number is None or number <= 0:
        raise SettingValueError("a positive integer")


def port_number(value: Any) -> None:
    """Schema check: a TCP port (0 picks a free one)."""
    number = _is_int(value)
    if number is None or number > 65535:
        raise SettingValueError("an integer between 0 and 65535")


def boolean(value: Any) -> None:
    """Schema check: ``true`` or ``false``."""
    if value not in (True, False, "true", "false"):
        raise SettingValueError("true or false")


def text(value: Any) -> None:
    """Schema check: a string (a yaml number or list is refused)."""
    if not isinstance(value, str):
        raise SettingValueError("a string")


def one_of(*allowed: str) -> Check:
    """Schema check: one of ``allowed`` (case-insensitive)."""
    def check(value: Any) -> None:
        if not isinstance(value, str) or value.strip().lower() not in allowed:
            raise SettingValueError("one of " + ", ".join(allowed))

    return check


LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "off")


def log_filter(value: Any) -> None:
    """``info`` or ``target=level,...`` (the level of each part must be known)."""
    parts = [p for p in str(value).strip().lower().split(",") if p.strip()]
    if not parts or any(p.split("=")[-1].strip() not in LOG_LEVELS for p in parts):
        raise SettingValueError("a level: " + ", ".join(LOG_LEVELS)
                                + " (or target=level pairs separated by commas)")


_SCHEMA: list[Setting] = []


def register_settings(*settings: Setting) -> None:
    """Add settings to the schema (idempotent per environment variable / yaml key)."""
    for setting in settings:
        if setting not in _SCHEMA:
            _SCHEMA.append(setting)


def settings_schema() -> tuple[Setting, ...]:
    """Every registered setting, in registration order."""
    return tuple(_SCHEMA)


# Settings read where they are used (engine, leases, recovery, queues, loading, plugins,
# nodes, CLI), each through ``Setting.read``: one name, one default, one message.

def strict_count(env: Mapping[str, str], name: str, default: int) -> int:
    """A non-negative integer, ``default`` when unset; anything else is a ``ConfigError``."""
    value = strict_non_negative_int(env, name)
    return default if value is None else value


def _lease_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0.5 <= value <= 86_400):
        raise ConfigError(f"{name} must be a number of seconds from 0.5 to 86400")
    return value


def _recovery_mode(env: Mapping[str, str], name: str, default: str) -> str:
    mode = env.get(name, default).strip() or default
    if mode not in RECOVERY_MODES:
        raise ConfigError(f"{name} must be either 'stall' or 'resume'")
    return mode


def _names(env: Mapping[str, str], name: str, default: frozenset[str]) -> frozenset[str]:
    value = env.get(name)
    if value is None:
        return default
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _text_or_default(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    return env.get(name) or default


def _path_list(env: Mapping[str, str], name: str,
               default: tuple[str, ...] | None) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(part.strip() for part in raw.split(os.pathsep) if part.strip())


_USIZE = re.compile(r"\+?[0-9]+")
MAX_REPEAT_ITERATIONS_LIMIT = 1024
"""The highest ``IRONFLOW_MAX_REPEAT_ITERATIONS`` an operator may set."""


def _repeat_iterations(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    if not _USIZE.fullmatch(raw):
        raise NodeError(f"{name} must be a positive whole number")
    value = int(raw)
    if not 1 <= value <= MAX_REPEAT_ITERATIONS_LIMIT:
        raise NodeError(f"{name} must be between 1 and {MAX_REPEAT_ITERATIONS_LIMIT}")
    return value


def _progress_on(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    return value.lower() not in ("0", "off", "false")


def _list_cap(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = strict_non_negative_int(env, name)
    except ConfigError:
        value = 0
    if value is None:
        return default
    if value <= 0:
        raise ConfigError(f"{name} must be a positive integer")
    return value


RECOVERY_MODES = ("stall", "resume")

MAX_FLOW_SOURCE_BYTES = Setting(env="IRONFLOW_MAX_FLOW_SOURCE_BYTES", default=1_048_576,
                                reader=lenient_positive_int)
"""Largest flow source (file or inline), in UTF-8 bytes; invalid or 0 means the default."""
LEASE_TTL_SECONDS = Setting(env="IRONFLOW_LEASE_TTL_SECONDS", default=90.0,
                            reader=_lease_seconds)
"""Lifetime of a run-owner lease, 0.5 to 86400 seconds."""
RECOVERY = Setting(env="IRONFLOW_RECOVERY", default="stall", reader=_recovery_mode)
"""What happens to a run whose owner died: ``stall`` (as upstream) or ``resume``."""
RECOVERY_MAX_ATTEMPTS = Setting(env="IRONFLOW_RECOVERY_MAX_ATTEMPTS", default=3,
                                reader=strict_count)
"""How many times one run may be recovered over its life."""
QUEUE = Setting(env="IRONFLOW_QUEUE", yaml="queue_backend", default="inline")
"""The run queue by name (``queue_backend`` in ironflow.yaml); checked against the registry."""
MAX_SUBWORKFLOW_DEPTH = Setting(env="IRONFLOW_MAX_SUBWORKFLOW_DEPTH", default=8,
                                reader=lenient_positive_int)
MAX_SUBWORKFLOW_RUNS = Setting(env="IRONFLOW_MAX_SUBWORKFLOW_RUNS", default=1024,
                               reader=lenient_positive_int)
MAX_CONCURRENT_SUBWORKFLOWS = Setting(env="IRONFLOW_MAX_CONCURRENT_SUBWORKFLOWS", default=16,
                                      reader=lenient_positive_int)


DISABLED_PLUGINS = Setting(env="IRONFLOW_DISABLED_PLUGINS", default=frozenset(), reader=_names)
"""Plugin names (comma list) skipped before their module is imported."""
FLOWS_DIR = Setting(env="FLOWS_DIR", yaml="flows_dir", check=text, reader=_text_or_default)
"""The flows directory; child flows may be loaded from it (empty = unset)."""
FS_ROOTS = Setting(env="IRONFLOW_FS_ROOTS", reader=_path_list)
"""Directories file nodes may reach (``os.pathsep`` list); unset = no policy (None)."""
MAX_REPEAT_ITERATIONS = Setting(env="IRONFLOW_MAX_REPEAT_ITERATIONS", default=128,
                                reader=_repeat_iterations)
"""Cap on ``repeat_subworkflow`` iterations, 1 to 1024; a bad value fails the step."""
CACHE_DIR = Setting(env="IRONFLOW_CACHE_DIR", default=".ironflow_cache",
                    reader=_text_or_default)
"""Where ``file`` cache entries live when a step names no directory (empty = default)."""
PROGRESS = Setting(env="IRONFLOW_PROGRESS", check=one_of("on", "off", "true", "false", "1", "0"),
                   default=True, reader=_progress_on)
"""The CLI's progress display for text output; ``0``/``off``/``false`` turn it off."""
MAX_LIST_RECORDS = Setting(env="IRONFLOW_MAX_LIST_RECORDS", check=positive_int, default=100,
                           reader=_list_cap)
"""Largest page of runs ``ironflow list`` may return, and its default page size."""


register_settings(
    # CLI and engine
    Setting(env="IRONFLOW_LOG", check=log_filter),
    PROGRESS,
    Setting(env="IRONFLOW_STORE", yaml="store_backend", check=text),
    Setting(env="IRONFLOW_STORE_DIR", yaml="store_dir", check=text),
    Setting(env="REDIS_URL", yaml="redis_url", check=text, secret=True),
    Setting(env="REDIS_PREFIX", yaml="redis_prefix", check=text),
    Setting(env="REDIS_TTL", yaml="redis_ttl", check=positive_int),
    Setting(env="IRONFLOW_MAX_CONCURRENT_TASKS", yaml="max_concurrent_tasks",
            check=non_negative_int),
    Setting(env="IRONFLOW_MAX_RUN_SECONDS", check=non_negative_int),
    MAX_LIST_RECORDS,
    DISABLED_PLUGINS,
    # Lua limits: strict here although appendix A lets invalid values default
    # (see docs/compatibility.md); 0 disables a limit.
    Setting(env="IRONFLOW_LUA_MAX_INSTRUCTIONS", check=limit),
    Setting(env="IRONFLOW_LUA_MAX_SECONDS", check=limit),
    Setting(env="IRONFLOW_LUA_MAX_MEMORY_BYTES", check=limit),
    Setting(env="IRONFLOW_LUA_GC_AFTER_EXECUTION", check=boolean),
    # API server
    Setting(env="HOST", yaml="host", check=text),
    Setting(env="PORT", yaml="port", check=port_number),
    FLOWS_DIR,
    Setting(env="MAX_BODY", yaml="max_body", check=positive_int),
    Setting(env="IRONFLOW_API_KEY", yaml="api_key", secret=True),
    Setting(env="IRONFLOW_ALLOW_UNAUTHENTICATED_API", yaml="allow_unauthenticated_api",
            check=boolean),
    Setting(env="IRONFLOW_ALLOW_ADHOC_FLOWS", yaml="allow_adhoc_flows", check=boolean),
    Setting(env="IRONFLOW_METRICS_ENABLED", yaml="metrics_enabled", check=boolean),
    Setting(env="IRONFLOW_EVENT_STORE", yaml="event_store", check=one_of("memory")),
    Setting(env="IRONFLOW_EVENT_MEMORY_CAPACITY", yaml="event_memory_capacity",
            check=positive_int),
    Setting(env="IRONFLOW_CORS_ORIGINS", yaml="cors_origins"),
    Setting(env="IRONFLOW_SHUTDOWN_GRACE_SECONDS", check=non_negative_int),
    Setting(yaml="webhooks"),
    Setting(yaml="schedules"),  # checked in full by ironflow_core.schedules.config
    # read where used, through Setting.read (their readers raise the errors)
    MAX_FLOW_SOURCE_BYTES,
    LEASE_TTL_SECONDS,
    RECOVERY,
    RECOVERY_MAX_ATTEMPTS,
    QUEUE,
    MAX_SUBWORKFLOW_DEPTH,
    MAX_SUBWORKFLOW_RUNS,
    MAX_CONCURRENT_SUBWORKFLOWS,
    FS_ROOTS,
    MAX_REPEAT_ITERATIONS,
    CACHE_DIR,
)


def _describe(setting: Setting, value: Any, name: str, source: str, allowed: str) -> str:
    shown = "" if setting.secret else f" {value!r}"
    return f"Invalid value{shown} for {name} ({source}): expected {allowed}"


def check_settings(
    env: Mapping[str, str], config: Mapping[str, Any], *, config_source: str = "ironflow.yaml"
) -> list[str]:
    """Check every known setting in ``env`` and ``config``; returns warnings.

    Raises ``ConfigError`` naming each bad value, where it came from and what
    is allowed. Unknown yaml keys are warnings that suggest the nearest key.
    """
    import difflib

    errors: list[str] = []
    yaml_keys: set[str] = set()
    for setting in _SCHEMA:
        if setting.yaml is not None:
            yaml_keys.add(setting.yaml)
        if setting.check is None:
            continue
        if setting.env is not None and env.get(setting.env) not in (None, ""):
            try:
                setting.check(env[setting.env])
            except SettingValueError as exc:
                errors.append(_describe(setting, env[setting.env], setting.env,
                                        "environment", str(exc)))
        if setting.yaml is not None and config.get(setting.yaml) is not None:
            try:
                setting.check(config[setting.yaml])
            except SettingValueError as exc:
                errors.append(_describe(setting, config[setting.yaml], setting.yaml,
                                        config_source, str(exc)))
    if errors:
        raise ConfigError("; ".join(errors))
    warnings = []
    for key in config:
        if key in yaml_keys:
            continue
        near = difflib.get_close_matches(str(key), sorted(yaml_keys), n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        warnings.append(f"{config_source}: unknown setting '{key}'{hint}")
    return warnings
