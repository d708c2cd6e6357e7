"""Live progress while a run executes.

On a terminal a rich table shows each step's state and duration and is
cleared when the run ends; otherwise one plain line per step event goes to
stderr, so stdout keeps the contract's output (and ``--format json`` stays
parseable).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ironflow_core.model import Event, ProcessEvent

STEP_EVENTS = frozenset({"task_started", "task_succeeded", "task_failed", "task_retrying",
                         "task_skipped", "task_cancelled"})
"""The event types progress displays; each has a method ``_<type>``."""


def _call_step_method(progress: Any, event: Event | ProcessEvent) -> None:
    if event.type in STEP_EVENTS:
        getattr(progress, f"_{event.type}")(event)


class PlainProgress:
    """One line per step transition, on stderr (a ``RunObserver``)."""

    def __init__(self) -> None:
        self._out = sys.stderr

    def _line(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def _task_started(self, event: Event) -> None:
        self._line(f"[{event.step}] started (attempt {event.attempt})")

    def _task_succeeded(self, event: Event) -> None:
        self._line(f"[{event.step}] succeeded in {event.duration_ms}ms")

    def _task_failed(self, event: Event) -> None:
        self._line(f"[{event.step}] failed: {event.error}")

    def _task_retrying(self, event: Event) -> None:
        self._line(f"[{event.step}] retrying (attempt {event.attempt})")

    def _task_skipped(self, event: Event) -> None:
        self._line(f"[{event.step}] skipped: {event.reason}")

    def _task_cancelled(self, event: Event) -> None:
        self._line(f"[{event.step}] cancelled")

    def on_event(self, event: Event | ProcessEvent) -> None:
        """``RunObserver``: print the step transitions."""
        _call_step_method(self, event)

    def start(self) -> None:
        """Nothing to set up for plain lines."""

    def stop(self) -> None:
        """Nothing to tear down for plain lines."""


class LiveProgress:
    """A rich live table of steps (terminal only)."""

    def __init__(self, step_names: list[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self._states: dict[str, list[Any]] = {n: ["pending", None, None] for n in step_names}
        self._console = Console(stderr=False)
        self._live = Live(console=self._console, transient=True, refresh_per_second=8,
                          get_renderable=self._render)

    def _render(self) -> Any:
        from rich.table import Table

        styles = {"pending": "dim", "running": "yellow", "success": "green", "failed": "red",
                  "skipped": "dim", "cancelled": "magenta", "retrying": "yellow"}
        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("step")
        table.add_column("state")
        table.add_column("time", justify="right")
        names = list(self._states)
        if len(names) > 40:  # keep the terminal readable on big flows
            names = [n for n in names if self._states[n][0] in ("running", "failed")][-40:]
        for name in names:
            status, began, took = self._states[name]
            if took is None and began is not None:
                took = int((time.monotonic() - began) * 1000)
            table.add_row(name, f"[{styles.get(status, '')}]{status}[/]",
                          "" if took is None else f"{took}ms")
        return table

    def _set(self, event: Event, status: str) -> None:
        entry = self._states.setdefault(event.step or "?", ["pending", None, None])
        entry[0] = status
        if status == "running":
            entry[1], entry[2] = time.monotonic(), None
        elif event.duration_ms is not None:
            entry[2] = event.duration_ms

    def _task_started(self, event: Event) -> None:
        self._set(event, "running")

    def _task_succeeded(self, event: Event) -> None:
        self._set(event, "success")

    def _task_failed(self, event: Event) -> None:
        self._set(event, "failed")

    def _task_retrying(self, event: Event) -> None:
        self._set(event, "retrying")

    def _task_skipped(self, event: Event) -> None:
        self._set(event, "skipped")

    def _task_cancelled(self, event: Event) -> None:
        self._set(event, "cancelled")

    def on_event(self, event: Event | ProcessEvent) -> None:
        """``RunObserver``: update the step's row."""
        _call_step_method(self, event)

    def start(self) -> None:
        """Show the live table (until ``stop``)."""
        self._live.start()

    def stop(self) -> None:
        """Remove the live table (it is transient) before the result prints."""
        self._live.stop()
