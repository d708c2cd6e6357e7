"""The ``ironflow`` click group (semantics.md#cli, #configuration).

Every subcommand, the built-in ones included, comes from the commands hook
(``ironflow_register_commands``): the core's own are registered by the
``core.cli`` plugin (``cli/plugin.py``) like any plugin's. ``ironflow --help``
calls that hook alone; nodes, stores and the rest load only for a command that
needs them.
"""

from __future__ import annotations

import sys

import click

from ironflow_core._version import __version__
from ironflow_core.cli.shared import EXIT_SIGINT, State, end_startup_gc_pause, global_options


class _Group(click.Group):
    """Finds its subcommands through the commands hook, when they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._hook_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None:
            command = self._hook_commands(ctx).get(name)
        return command

    def _hook_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        try:
            specs = ctx.ensure_object(State).commands
        except Exception:  # plugin discovery itself broke: keep the built-in commands
            from ironflow_core.cli.plugin import ironflow_register_commands

            specs = tuple(ironflow_register_commands())
        found: dict[str, click.Command] = {}
        for spec in specs:  # registration order: the core's built-ins win a clash
            found.setdefault(spec.name, spec.command)
        return found


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ironflow",
                      message="%(prog)s %(version)s")
@global_options
def cli() -> None:
    """IronFlow: run Lua-defined workflows on a trio engine."""
    end_startup_gc_pause()  # the subcommand starts: collect from here on


def main() -> None:
    """Entry point of the ``ironflow`` script: run the group, Ctrl-C is exit 130."""
    try:
        cli.main(prog_name="ironflow")
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        sys.exit(EXIT_SIGINT)
