"""Dotenv loading with the contract's rules (CLI-10).

The whole file is parsed before anything is applied; existing variables are
never overridden; within a file the first occurrence of a key wins. Error
messages never echo a line or a value.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from ironflow_core.errors import ConfigError


def parse_dotenv(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not key or "\0" in key or any(c.isspace() for c in key):
            raise ValueError("malformed line")
        value = _parse_value(rest.strip())
        if "\0" in value:
            raise ValueError("NUL in value")
        values.setdefault(key, value)
    return values


def _parse_value(text: str) -> str:
    if text[:1] in ("'", '"'):
        quote = text[0]
        end = text.find(quote, 1)
        while quote == '"' and end > 0 and text[end - 1] == "\\":
            end = text.find(quote, end + 1)
        if end < 0:
            raise ValueError("unterminated quote")
        inner = text[1:end]
        trailing = text[end + 1 :].strip()
        if trailing and not trailing.startswith("#"):
            raise ValueError("text after closing quote")
        if quote == '"':
            inner = (
                inner.replace("\\n", "\n").replace("\\t", "\t")
                .replace('\\"', '"').replace("\\\\", "\\")
            )
        return inner
    hash_at = text.find(" #")
    if hash_at >= 0:
        text = text[:hash_at]
    return text.strip()


def apply_dotenv(
    path: str | None, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Apply ``path`` (required to exist) or ``./.env`` (optional); returns what was set."""
    environ = os.environ if environ is None else environ
    explicit = path is not None
    target = path if explicit else ".env"
    if not explicit and not os.path.exists(target):
        return {}
    try:
        with open(target, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        if explicit:
            raise ConfigError(f"Dotenv file is not accessible: {target}") from None
        raise ConfigError(f"Failed to parse dotenv file: {target}") from None
    try:
        values = parse_dotenv(text)
    except ValueError:
        raise ConfigError(f"Failed to parse dotenv file: {target}") from None
    applied = {}
    for key, value in values.items():
        if key not in environ:
            environ[key] = value
            applied[key] = value
    return applied
