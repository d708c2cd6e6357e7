"""Dotenv loading with the contract's rules (CLI-10), parsed by python-dotenv.

python-dotenv does the parsing (quotes, escapes such as ``"C:\\\\new"``,
``export``, comments); the rules are ours: the whole file is parsed before
anything is applied, variables already set are never overridden, within a
file the first occurrence of a key wins, and ``${VAR}`` is not expanded.
Error messages name the line but never echo it or a value.
"""

from __future__ import annotations

import io
import os
from collections.abc import MutableMapping

from ironflow_core.errors import ConfigError


class DotenvSyntaxError(ValueError):
    """A dotenv line that is not ``KEY=VALUE``; carries the line number for the message."""
    def __init__(self, line: int) -> None:
        super().__init__(f"line {line} is not KEY=VALUE")
        self.line = line


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY -> value for the whole file; the first occurrence of a key wins."""
    from dotenv.parser import parse_stream

    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is None and not binding.error:
            continue  # blank line or comment
        if binding.error or binding.key is None or binding.value is None or "\0" in binding.key:
            raise DotenvSyntaxError(binding.original.line)
        if "\0" in binding.value:
            raise DotenvSyntaxError(binding.original.line)
        values.setdefault(binding.key, binding.value)
    return values


def apply_dotenv(
    path: str | None, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Apply ``path`` (required to exist) or ``./.env`` (optional); returns what was set."""
    environ = os.environ if environ is None else environ
    explicit = path is not None
    target = ".env" if path is None else path
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
    except DotenvSyntaxError as exc:
        raise ConfigError(f"Failed to parse dotenv file: {target}: {exc}") from None
    applied = {}
    for key, value in values.items():
        if key not in environ:
            environ[key] = value
            applied[key] = value
    return applied
