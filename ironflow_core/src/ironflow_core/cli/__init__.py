"""The ``ironflow`` command. Subcommands import what they need when they run."""

from __future__ import annotations


def main() -> None:
    """The ``ironflow`` script; imports the click app only when called.

    Start-up (imports, plugin discovery, option parsing) runs with the cyclic
    GC paused: it builds long-lived objects only, so collections would walk
    them for nothing. The pause ends when the subcommand starts (see
    ``cli.shared.end_startup_gc_pause``), or when this returns at the latest.
    """
    from ironflow_core.cli import shared

    shared.start_startup_gc_pause()
    try:
        from ironflow_core.cli.app import main as _main

        _main()
    finally:
        shared.end_startup_gc_pause(freeze=False)
