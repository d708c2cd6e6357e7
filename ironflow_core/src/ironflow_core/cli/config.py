"""``ironflow.yaml``: the config file (CLI-12). Unknown keys are ignored."""

from __future__ import annotations

import os
from typing import Any

from ironflow_core.errors import ConfigError

DEFAULT_CONFIG = "ironflow.yaml"


def load_config(path: str | None) -> dict[str, Any]:
    """``-C PATH`` must exist; otherwise ``./ironflow.yaml`` is read when present."""
    explicit = path is not None
    target = path if explicit else DEFAULT_CONFIG
    if not os.path.exists(target):
        if explicit:
            raise ConfigError(f"Config file not found: {target}")
        return {}
    try:
        with open(target, encoding="utf-8") as handle:
            text = handle.read()
        from ruamel.yaml import YAML

        data = YAML(typ="safe", pure=True).load(text)
    except ConfigError:
        raise
    except Exception:
        raise ConfigError(f"Failed to parse config file: {target}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Failed to parse config file: {target}")
    return data
