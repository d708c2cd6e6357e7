"""Choosing the state store (CLI-11, CLI-13..15) and the built-in store plugins."""

from __future__ import annotations

import pytest

from ironflow_core.errors import ConfigError
from ironflow_core.registry import build_registry
from ironflow_core.stores.json_store import JsonStore
from ironflow_core.stores.memory import MemoryStore
from ironflow_core.stores.select import open_store, store_settings

REGISTRY = build_registry({}, entry_points=False)


def test_builtin_stores_are_registered_by_the_core_plugin():
    assert {"json", "memory"} <= set(REGISTRY.stores)


def test_cli_13_json_is_the_default_backend_under_data_runs():
    store = open_store(REGISTRY, {})
    assert isinstance(store, JsonStore) and store.root == "data/runs"


def test_cli_11_store_dir_precedence(tmp_path):
    env = {"IRONFLOW_STORE_DIR": "from-env"}
    config = {"store_dir": "from-yaml"}
    assert open_store(REGISTRY, env, store_dir="from-cli", config=config).root == "from-cli"
    assert open_store(REGISTRY, env, config=config).root == "from-env"
    assert open_store(REGISTRY, {}, config=config).root == "from-yaml"


def test_cli_13_backend_from_env_beats_config():
    assert isinstance(open_store(REGISTRY, {"IRONFLOW_STORE": "memory"},
                                 config={"store_backend": "json"}), MemoryStore)
    assert isinstance(open_store(REGISTRY, {}, config={"store_backend": "memory"}), MemoryStore)


def test_cli_15_unknown_backend_lists_the_registered_ones():
    with pytest.raises(ConfigError) as info:
        open_store(REGISTRY, {"IRONFLOW_STORE": "sqlite"})
    known = ", ".join(sorted(REGISTRY.stores))
    assert str(info.value) == f"Unknown state store backend 'sqlite'. Use one of: {known}"


def test_cli_13_redis_settings_env_then_config():
    settings = store_settings(
        {"REDIS_URL": "redis://env:6379", "REDIS_TTL": "60"},
        config={"redis_url": "redis://yaml", "redis_prefix": "p:", "redis_ttl": 5},
    )
    assert (settings.url, settings.prefix, settings.ttl_seconds) == ("redis://env:6379", "p:", 60)
    settings = store_settings({}, config={"redis_ttl": 99_999_999_999})
    assert (settings.url, settings.prefix, settings.ttl_seconds) == (None, None, 99_999_999_999)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "Redis TTL must be greater than zero"),
        ("100000000000", "Redis TTL must not exceed 99999999999 seconds"),
        ("ten", "REDIS_TTL must be a positive integer"),
        ("-5", "REDIS_TTL must be a positive integer"),
        ("1.5", "REDIS_TTL must be a positive integer"),
    ],
)
def test_cli_14_invalid_redis_ttl_is_fatal(value, message):
    with pytest.raises(ConfigError) as info:
        open_store(REGISTRY, {"REDIS_TTL": value})
    assert str(info.value) == message


def test_cli_14_invalid_redis_ttl_in_config_is_fatal():
    with pytest.raises(ConfigError):
        store_settings({}, config={"redis_ttl": True})
    with pytest.raises(ConfigError):
        store_settings({}, config={"redis_ttl": 0})
