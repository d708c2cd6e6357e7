"""The ``ironflow`` command. Subcommands import what they need when they run."""

from __future__ import annotations


def main() -> None:
    """The ``ironflow`` script; imports the click app only when called."""
    from ironflow_core.cli.app import main as _main

    _main()
