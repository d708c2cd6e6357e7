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


def test_stores_get_their_own_options_env_first_then_config():
    """The core resolves only the store directory; a backend reads its own settings."""
    settings = store_settings(
        {"IRONFLOW_STORE_DIR": "", "MY_STORE_URL": "from-env", "MY_STORE_DB": ""},
        config={"my_store_url": "from-yaml", "my_store_db": "yaml-db", "store_dir": "d"},
    )
    assert settings.store_dir == "d"  # an empty environment value counts as unset
    assert settings.option("MY_STORE_URL", "my_store_url") == "from-env"
    assert settings.option("MY_STORE_DB", "my_store_db") == "yaml-db"
    assert settings.option("MY_STORE_MISSING", "my_store_missing") is None
