"""``ironflow.yaml``: the config file (CLI-12).

Values are checked against the settings schema (``settings.check_settings``)
like environment variables; an unknown key is a warning. A file that is not
YAML says the line where parsing stopped.
"""

from __future__ import annotations

import os
from typing import Any

from ironflow_core.errors import ConfigError

DEFAULT_CONFIG = "ironflow.yaml"


def load_config(path: str | None) -> dict[str, Any]:
    """``-C PATH`` must exist; otherwise ``./ironflow.yaml`` is read when present."""
    explicit = path is not None
    target = DEFAULT_CONFIG if path is None else path
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
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {target}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise ConfigError(f"Failed to parse config file: {target}{_where(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Failed to parse config file: {target}: expected a mapping of "
                          "settings (key: value)")
    return data


def _where(exc: BaseException) -> str:
    """``: line N: <problem>`` from a YAML error, without echoing the file's content."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or ""
    if mark is None:
        return ""
    where = f": line {mark.line + 1}, column {mark.column + 1}"
    return f"{where}: {problem}" if problem else where
