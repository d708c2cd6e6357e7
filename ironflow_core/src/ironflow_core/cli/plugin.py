"""The core's built-in subcommands, registered through the commands hook like a plugin's.

Importing the command modules is cheap (click and ``cli.shared``): each
command imports the engine, stores or API only when it runs.
"""

from __future__ import annotations

from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import CommandSpec


@hookimpl
def ironflow_register_commands() -> list[CommandSpec]:
    """``run``, ``validate``, ``nodes``, ``plugins``, ``list``, ``inspect``, ``resume``,
    ``submit``, ``worker``, ``workers``, ``schedules`` and ``serve``."""
    from ironflow_core.cli import commands, queue_commands, schedules, serve

    built_in = (
        commands.run, commands.validate, commands.nodes, commands.plugins,
        commands.list_runs, commands.inspect, commands.resume,
        queue_commands.submit, queue_commands.worker, queue_commands.workers,
        schedules.schedules, serve.serve,
    )
    return [CommandSpec(name=command.name or "", command=command) for command in built_in]
