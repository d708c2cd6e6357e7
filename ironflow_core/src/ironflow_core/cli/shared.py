"""What every ``ironflow`` subcommand shares: per-invocation state, global options, errors.

Commands (built-in or a plugin's) import this module, never ``cli.app``, so the
click group can find them through the commands hook without an import cycle.
``--dotenv`` and ``-C/--config`` are accepted before or after the subcommand.
Every expected failure prints one ``Error: <message>`` line on stderr; no
traceback is ever shown for bad input (``-v`` adds it for an unexpected
failure). Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted
(SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import click

from ironflow_core.errors import IronflowError
from ironflow_core.gc_pause import paused_gc
from ironflow_core.redact import redact_urls

if TYPE_CHECKING:
    from ironflow_core.registry import LoadedPlugins, Registry
    from ironflow_core.specs import CommandSpec


_startup_pause: AbstractContextManager[None] | None = None
"""The start-up's hold on the collector (one ``gc_pause.paused_gc``), while it lasts."""


def start_startup_gc_pause() -> None:
    """Pause the cyclic GC for the script's start-up (``ironflow_core.cli.main``)."""
    global _startup_pause
    if _startup_pause is None:
        _startup_pause = paused_gc()
        _startup_pause.__enter__()


def end_startup_gc_pause(*, freeze: bool = True) -> None:
    """End the start-up's pause; ``freeze`` what start-up built first.

    Frozen objects (modules, classes, click commands, plugins: they live as
    long as the process) are left out of every later collection, so the full
    collections of a long run or a large flow do not walk them again.
    """
    global _startup_pause
    pause, _startup_pause = _startup_pause, None
    if pause is not None:
        if freeze:
            gc.freeze()
        pause.__exit__(None, None, None)


class State:
    """Per-invocation settings, resolved once: dotenv first, then the config file.

    Plugins are loaded once per invocation: the commands hook (to find the
    subcommand) and the registry (for a command that needs nodes or stores)
    share them, unless the dotenv changed ``IRONFLOW_DISABLED_PLUGINS`` between.
    """

    def __init__(self) -> None:
        self.dotenv: str | None = None
        self.config_path: str | None = None
        self._config: dict[str, Any] | None = None
        self._registry: Registry | None = None
        self._commands: tuple[CommandSpec, ...] | None = None
        self._plugins: tuple[frozenset[str], LoadedPlugins] | None = None

    def prepare(self) -> None:
        """Apply the dotenv, read the config file, check settings and set up logging (once)."""
        if self._config is not None:
            return
        from ironflow_core.cli.config import load_config
        from ironflow_core.cli.dotenv import apply_dotenv
        from ironflow_core.settings import check_settings

        apply_dotenv(self.dotenv)
        config = load_config(self.config_path)
        source = self.config_path or "ironflow.yaml"
        warnings = check_settings(os.environ, config, config_source=source)
        configure_logging(os.environ)
        for warning in warnings:
            click.echo(f"Warning: {warning}", err=True)
        self._config = config

    @property
    def config(self) -> dict[str, Any]:
        """The config file's settings (after the dotenv)."""
        self.prepare()
        assert self._config is not None
        return self._config

    def _loaded_plugins(self) -> LoadedPlugins:
        from ironflow_core.plugins import disabled_plugins, load_plugins

        disabled = disabled_plugins(os.environ)
        if self._plugins is None or self._plugins[0] != disabled:
            self._plugins = (disabled, load_plugins(os.environ))
        return self._plugins[1]

    @property
    def commands(self) -> tuple[CommandSpec, ...]:
        """Every subcommand from the commands hook alone (the built-ins come first)."""
        if self._registry is not None:
            return self._registry.commands
        if self._commands is None:
            from ironflow_core.registry import collect_commands

            self._commands = collect_commands(self._loaded_plugins())
        return self._commands

    @property
    def registry(self) -> Registry:
        """The process-wide registry, built on first use after ``prepare``."""
        self.prepare()
        if self._registry is None:
            from ironflow_core.registry import default_registry

            self._registry = default_registry(self._loaded_plugins())
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


EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure into one ``Error: ...`` line and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted", code=EXIT_SIGINT)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except BaseException as exc:
            report(exc, verbose=bool(kwargs.get("verbose")))

    return wrapper


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(leaves(inner))
        return found
    return [exc]


def report(exc: BaseException, *, verbose: bool = False) -> None:
    """Print the failure as ``Error: ...`` (and the traceback under ``-v``), then exit."""
    inner = leaves(exc)
    if any(isinstance(e, KeyboardInterrupt) for e in inner):
        fail("interrupted", code=EXIT_SIGINT)
    expected = [e for e in inner if isinstance(e, (IronflowError, OSError))]
    if expected:
        first = expected[0]
        message = str(first) if isinstance(first, IronflowError) else _os_message(first)
        if verbose and not isinstance(first, IronflowError):
            _traceback(exc)
        fail(message)
    if verbose:
        _traceback(exc)
    unexpected = inner[0]
    hint = "" if verbose else " (run with -v for details)"
    fail(f"unexpected {type(unexpected).__name__}: {unexpected}{hint}")


def _os_message(exc: OSError) -> str:
    name = f" {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}:{name}" if name else str(exc.strerror or exc)


def _traceback(exc: BaseException) -> None:
    import traceback

    click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)


def fail(message: str, *, code: int = EXIT_FAILURE) -> None:
    """Print one redacted ``Error: ...`` line on stderr and exit with ``code``."""
    click.echo(f"Error: {redact_urls(message)}", err=True)
    sys.exit(code)


def usage_error(message: str) -> None:
    """A bad combination of arguments: click's usage error, exit 2."""
    raise click.UsageError(message)


def state() -> State:
    """This invocation's ``State`` (created on first use by the click context)."""
    return click.get_current_context().ensure_object(State)
