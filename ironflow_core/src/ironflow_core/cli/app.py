"""The click group, global options and error handling (CONTRACT §6.1, §6.2).

``--dotenv`` and ``-C/--config`` are accepted before or after the subcommand.
Every expected failure prints ``Error: <message>`` on stderr and exits 1;
usage errors exit 2; no traceback is ever shown for bad input.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from ironflow_core import __version__
from ironflow_core.errors import IronflowError
from ironflow_core.redact import redact_urls


class State:
    """Per-invocation settings, resolved once: dotenv first, then the config file."""

    def __init__(self) -> None:
        self.dotenv: str | None = None
        self.config_path: str | None = None
        self._config: dict[str, Any] | None = None
        self._registry: Any = None

    def prepare(self) -> None:
        if self._config is not None:
            return
        from ironflow_core.cli.config import load_config
        from ironflow_core.cli.dotenv import apply_dotenv

        apply_dotenv(self.dotenv)
        configure_logging(os.environ)
        self._config = load_config(self.config_path)

    @property
    def config(self) -> dict[str, Any]:
        self.prepare()
        assert self._config is not None
        return self._config

    @property
    def registry(self) -> Any:
        self.prepare()
        if self._registry is None:
            from ironflow_core.registry import default_registry

            self._registry = default_registry()
        return self._registry


_LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO,
           "warn": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR,
           "off": logging.CRITICAL + 10}


def configure_logging(env: Any) -> None:
    """Logs (including ``log`` nodes and Lua ``log()``) go to stderr (CLI-2)."""
    spec = (env.get("IRONFLOW_LOG") or env.get("RUST_LOG") or "info").strip().lower()
    level = _LEVELS.get(spec.split(",")[0].split("=")[-1], logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger("ironflow")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "WARN"}.get(record.levelname, record.levelname)
        return f"{level:<5} {redact_urls(record.getMessage())}"


def _set_dotenv(ctx: click.Context, _param: Any, value: str | None) -> str | None:
    if value is not None:
        ctx.ensure_object(State).dotenv = value
    return value


def _set_config(ctx: click.Context, _param: Any, value: str | None) -> str | None:
    if value is not None:
        ctx.ensure_object(State).config_path = value
    return value


def global_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Attach ``--dotenv`` and ``-C/--config`` to a command (they are global, CLI-1)."""
    func = click.option("--dotenv", metavar="PATH", expose_value=False, is_eager=True,
                        callback=_set_dotenv, help="Load environment variables from PATH.")(func)
    func = click.option("-C", "--config", metavar="PATH", expose_value=False, is_eager=True,
                        callback=_set_config, help="Config file (default ./ironflow.yaml).")(func)
    return func


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into ``Error: ...`` and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IronflowError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted")

    return wrapper


def fail(message: str) -> None:
    click.echo(f"Error: {redact_urls(message)}", err=True)
    sys.exit(1)


def state() -> State:
    return click.get_current_context().ensure_object(State)


class _Group(click.Group):
    """Adds plugin-contributed commands when they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None:
            command = self._plugin_commands(ctx).get(name)
        return command

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        try:
            registry = ctx.ensure_object(State).registry
        except Exception:
            return {}
        return {spec.name: spec.command for spec in registry.commands}


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ironflow",
                      message="%(prog)s %(version)s")
@global_options
def cli() -> None:
    """IronFlow: run Lua-defined workflows on a trio engine."""


def main() -> None:
    from ironflow_core.cli import commands, queue_commands, serve  # noqa: F401  (registers subcommands)

    try:
        cli.main(prog_name="ironflow")
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        sys.exit(1)
