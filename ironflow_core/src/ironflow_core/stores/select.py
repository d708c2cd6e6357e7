"""Choosing and opening the state store from CLI > environment > ironflow.yaml > default.

Backend: ``IRONFLOW_STORE`` > ``store_backend`` > ``json`` (CLI-13, CLI-15).
Store directory: ``--store-dir`` > ``IRONFLOW_STORE_DIR`` > ``store_dir`` >
``data/runs``. Redis settings come from ``REDIS_URL``/``REDIS_PREFIX``/
``REDIS_TTL`` or their yaml keys; ``None`` leaves the backend's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ironflow_core.errors import ConfigError, IronflowError, StoreUnavailableError
from ironflow_core.specs import StateStore, StoreSettings

if TYPE_CHECKING:
    from ironflow_core.registry import Registry

DEFAULT_BACKEND = "json"
DEFAULT_STORE_DIR = "data/runs"
MAX_REDIS_TTL_SECONDS = 99_999_999_999


def _pick(env: Mapping[str, str], env_name: str, config: Mapping[str, Any], key: str) -> Any:
    """Environment first, then the config file; empty environment values count as unset."""
    value = env.get(env_name)
    if value is not None and value != "":
        return value
    return config.get(key)


def _optional_str_setting(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


def redis_ttl(env: Mapping[str, str], config: Mapping[str, Any]) -> int | None:
    """``REDIS_TTL``/``redis_ttl``: whole seconds in 1..=99 999 999 999, else fatal (CLI-14)."""
    value = _pick(env, "REDIS_TTL", config, "redis_ttl")
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError("REDIS_TTL must be a positive integer")
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise ConfigError("REDIS_TTL must be a positive integer")
        value = int(text)
    if not isinstance(value, int):
        raise ConfigError("REDIS_TTL must be a positive integer")
    if value <= 0:
        raise ConfigError("Redis TTL must be greater than zero")
    if value > MAX_REDIS_TTL_SECONDS:
        raise ConfigError(f"Redis TTL must not exceed {MAX_REDIS_TTL_SECONDS} seconds")
    return value


def store_settings(
    env: Mapping[str, str],
    *,
    store_dir: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> StoreSettings:
    config = config or {}
    directory = store_dir
    if directory is None:
        directory = _optional_str_setting(_pick(env, "IRONFLOW_STORE_DIR", config, "store_dir"), "store_dir")
    return StoreSettings(
        store_dir=directory or DEFAULT_STORE_DIR,
        url=_optional_str_setting(_pick(env, "REDIS_URL", config, "redis_url"), "redis_url"),
        prefix=_optional_str_setting(_pick(env, "REDIS_PREFIX", config, "redis_prefix"), "redis_prefix"),
        ttl_seconds=redis_ttl(env, config),
        env=env,
    )


def backend_name(env: Mapping[str, str], config: Mapping[str, Any] | None = None) -> str:
    value = _pick(env, "IRONFLOW_STORE", config or {}, "store_backend")
    return _optional_str_setting(value, "store_backend") or DEFAULT_BACKEND


def open_store(
    registry: Registry,
    env: Mapping[str, str],
    *,
    store_dir: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> StateStore:
    """The configured store; ``ConfigError`` for an unknown backend or a bad setting."""
    name = backend_name(env, config)
    spec = registry.stores.get(name)
    if spec is None:
        known = ", ".join(sorted(registry.stores))
        raise ConfigError(f"Unknown state store backend '{name}'. Use one of: {known}")
    settings = store_settings(env, store_dir=store_dir, config=config)
    try:
        store = spec.open(settings)
    except IronflowError:
        raise
    except Exception as exc:
        raise StoreUnavailableError(f"Failed to open state store '{name}': {exc}") from exc
    from ironflow_core.stores.observed import observe_store

    return observe_store(store, registry.observers)
