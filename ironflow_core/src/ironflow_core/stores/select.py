"""Choosing and opening the state store from CLI > environment > ironflow.yaml > default.

Backend: ``IRONFLOW_STORE`` > ``store_backend`` > ``json`` (CLI-13, CLI-15).
Store directory: ``--store-dir`` > ``IRONFLOW_STORE_DIR`` > ``store_dir`` >
``data/runs``. Everything else a backend needs it reads itself from the
environment and ``ironflow.yaml`` (``StoreSettings.option``): the core knows
no backend's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ironflow_core.errors import ConfigError, IronflowError, StoreUnavailableError
from ironflow_core.specs import StateStore, StoreSettings, plugin_setting

if TYPE_CHECKING:
    from ironflow_core.registry import Registry

DEFAULT_BACKEND = "json"
DEFAULT_STORE_DIR = "data/runs"


def _optional_str_setting(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


def store_settings(
    env: Mapping[str, str],
    *,
    store_dir: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> StoreSettings:
    """The settings every store gets; the store plugin reads its own options from them."""
    config = config or {}
    directory = store_dir
    if directory is None:
        directory = _optional_str_setting(
            plugin_setting(env, config, "IRONFLOW_STORE_DIR", "store_dir"), "store_dir"
        )
    return StoreSettings(store_dir=directory or DEFAULT_STORE_DIR, env=env, config=config)


def backend_name(env: Mapping[str, str], config: Mapping[str, Any] | None = None) -> str:
    """The store backend's name: ``IRONFLOW_STORE`` > ``store_backend`` > ``json`` (CLI-13)."""
    value = plugin_setting(env, config or {}, "IRONFLOW_STORE", "store_backend")
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
