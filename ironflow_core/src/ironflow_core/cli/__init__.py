"""The ``ironflow`` command. Subcommands import what they need when they run."""

from __future__ import annotations


def main() -> None:
    from ironflow_core.cli.app import main as _main

    _main()
