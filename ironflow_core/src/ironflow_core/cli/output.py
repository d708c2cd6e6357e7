"""Human-readable renderings of runs, flows and listings (CLI-21, CLI-24, CLI-25, CLI-52)."""

from __future__ import annotations

from collections.abc import Iterable

import click

from ironflow_core.jsonutil import dumps, dumps_pretty, format_seconds, parse_timestamp
from ironflow_core.model import FlowDefinition, RunRecord, RunSummary, TaskRecord

ICONS = {"success": "✓", "failed": "✗", "skipped": "⊘", "cancelled": "⊘",
         "running": "⟳", "pending": "○"}


def echo_flow_header(flow: FlowDefinition, verbose: bool) -> None:
    """Print the flow's name and step count (``-v``: each step and its dependencies)."""
    click.echo(f"Flow: {flow.name} ({len(flow.steps)} steps)")
    if not verbose:
        return
    click.echo()
    click.echo("Steps:")
    for step in flow.steps:
        deps = ", ".join(step.dependencies) if step.dependencies else "none"
        click.echo(f"  {step.name} [{step.node_type}] deps: {deps}")
        if step.max_retries:
            click.echo(f"    retries: {step.max_retries}, backoff: {format_seconds(step.backoff_s)}s")
        if step.timeout_s is not None:
            click.echo(f"    timeout: {format_seconds(step.timeout_s)}s")
        if step.route is not None:
            click.echo(f"    route: {step.route}")


def _duration_ms(task: TaskRecord) -> int | None:
    if not task.started or not task.finished:
        return None
    delta = parse_timestamp(task.finished) - parse_timestamp(task.started)
    return int(delta.total_seconds() * 1000)


def ordered_tasks(record: RunRecord, flow: FlowDefinition | None) -> list[TaskRecord]:
    """The run's tasks in the flow's step order (unknown ones last), for stable output."""
    if flow is None:
        return list(record.tasks.values())
    order = [s.name for s in flow.steps if s.name in record.tasks]
    rest = [n for n in record.tasks if n not in set(order)]
    return [record.tasks[n] for n in [*order, *rest]]


def echo_run_result(record: RunRecord, flow: FlowDefinition | None, verbose: bool) -> None:
    """Print a finished run as text: ID, status, each task and the final context."""
    click.echo()
    click.echo(f"Run ID: {record.id}")
    click.echo(f"Status: {record.status}")
    click.echo()
    click.echo("Tasks:")
    for task in ordered_tasks(record, flow):
        icon = ICONS.get(str(task.status), "?")
        click.echo(f"  {icon} {task.name} [{task.node_type}] (attempt {task.attempt})")
        if verbose:
            duration = _duration_ms(task)
            if duration is not None:
                click.echo(f"    Duration: {duration}ms")
        if task.error is not None:
            click.echo(f"    Error: {task.error}")
        if verbose and task.output is not None:
            click.echo(f"    Output: {dumps(task.output)}")
    visible = {k: v for k, v in record.ctx.items() if not k.startswith("_")}
    if visible:
        click.echo()
        click.echo("Context:")
        click.echo(dumps_pretty(visible))


def echo_run_table(runs: Iterable[RunSummary]) -> int:
    """Print run summaries as a table; returns how many were printed."""
    runs = list(runs)
    if not runs:
        click.echo("No runs found.")
        return 0
    click.echo(f"{'RUN ID':<38} {'FLOW':<20} {'STATUS':<10} {'STARTED':<24}")
    click.echo("-" * 92)
    for run in runs:
        started = "-"
        if run.started:
            started = parse_timestamp(run.started).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{run.id:<38} {run.flow_name:<20} {run.status!s:<10} {started:<24}")
    return len(runs)
