"""The built-in subcommands: run, validate, nodes, plugins, list, inspect."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ironflow_core.cli.shared import (
    EXIT_SIGINT,
    EXIT_SIGTERM,
    fail,
    global_options,
    handle_errors,
    state,
    usage_error,
)
from ironflow_core.errors import ConfigError, FlowLoadError

RUN_STATUS_NAMES = ("pending", "running", "success", "failed", "stalled", "cancelled")
"""``list --status`` choices (the model's ``RUN_STATUSES``, kept here so --help needs no import)."""


def _load(path: str, *, analyze: bool = False) -> Any:
    from ironflow_core.loading import load_flow

    st = state()
    try:
        return load_flow(path, registry=st.registry, env=os.environ, analyze=analyze)
    except FlowLoadError as exc:
        message = str(exc)
        # A message that already names the file is shown as is (no file name thrice).
        fail(message if path in message else f"Failed to load flow: {path}: {message}")


def _open_store(store_dir: str | None) -> Any:
    """Open the configured store; settings are checked here, before any output."""
    from ironflow_core.stores.select import backend_name, open_store, store_settings

    st = state()
    if backend_name(os.environ, st.config) == "json":
        directory = store_settings(os.environ, store_dir=store_dir, config=st.config).store_dir
        if os.path.exists(directory) and not os.path.isdir(directory):
            source = "--store-dir" if store_dir is not None else "store directory"
            fail(f"{source} {directory} is not a directory")
    return open_store(st.registry, os.environ, store_dir=store_dir, config=st.config)


async def _read_run(store_dir: str | None, run_id: str) -> Any:
    store = _open_store(store_dir)
    try:
        return await store.get_run(run_id)
    finally:
        await store.aclose()


def _initial_context(context: str | None, context_file: str | None, flow_path: str) -> dict:
    if context is not None and context_file is not None:
        usage_error("--context and --context-file cannot be used together")
    text = context
    if context_file is not None:
        try:
            with open(context_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            fail(f"Cannot read --context-file {context_file}: {exc.strerror}")
    data: Any = {}
    if text is not None:
        option = "--context-file" if context_file is not None else "--context"
        from ironflow_core.jsonutil import loads_strict

        try:  # no NaN/Infinity/1e999, bounded nesting (issue 14)
            data = loads_strict(text)
        except ValueError as exc:
            fail(f"Failed to parse {option} JSON: {exc}")
        if not isinstance(data, dict):
            fail(f"Failed to parse {option} JSON: expected a JSON object")
    data["_flow_dir"] = os.path.dirname(os.path.realpath(flow_path))
    return data


@click.command()
@click.argument("flow", type=click.Path())
@click.option("-c", "--context", "context", metavar="JSON", help="Initial context (a JSON object).")
@click.option("--context-file", metavar="PATH", help="Read the initial context from a JSON file.")
@click.option("-v", "--verbose", is_flag=True, help="Show steps, durations and outputs.")
@click.option("--store-dir", metavar="DIR", help="JSON store directory (default data/runs).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@global_options
@handle_errors
def run(flow: str, context: str | None, context_file: str | None, verbose: bool,
        store_dir: str | None, fmt: str) -> None:
    """Run a flow and print its result; exit 0 only when it succeeded."""
    from ironflow_core.engine import plan_flow, prepare_run

    st = state()
    initial = _initial_context(context, context_file, flow)
    st.prepare()
    definition = _load(flow)
    store = _open_store(store_dir)
    try:
        progress = _progress(definition, fmt)
        executor = prepare_run(
            plan_flow(definition, st.registry), store=store, registry=st.registry,
            context=initial, env=os.environ,
            observers=[progress] if progress else (),
            config_concurrency=_config_int(st.config, "max_concurrent_tasks"),
        )
    except BaseException:
        _close_now(store)
        raise
    def header() -> None:
        if fmt == "text":
            from ironflow_core.cli.output import echo_flow_header

            echo_flow_header(definition, verbose)

    _execute_and_report(executor, store, progress, definition, fmt, verbose, header)


PROBE_RUN_ID = "ironflow-store-probe"
"""A run id nobody uses: reading it tells whether the store answers at all."""


async def _probe(store: Any) -> None:
    """Fail before any output when the store cannot be reached (an absent run is fine)."""
    from ironflow_core.errors import RunNotFoundError

    try:
        await store.get_run(PROBE_RUN_ID)
    except RunNotFoundError:
        pass


def _close_now(store: Any) -> None:
    import trio

    trio.run(store.aclose)


def _execute_and_report(executor: Any, store: Any, progress: Any, definition: Any, fmt: str,
                        verbose: bool, header: Any) -> None:
    """Run to completion (SIGINT/SIGTERM cancel the run), print, exit by status (CLI-26).

    ``header`` prints the text header once the store has answered, so an
    unreachable store is one ``Error:`` line and nothing else. ``executor``
    may also be an async function returning one (a resume must take the
    run's lease inside the same trio run that executes it).
    """
    import inspect as _inspect

    import trio

    from ironflow_core.jsonutil import dumps_pretty_bytes

    received: list[int] = []
    started: list[bool] = []

    async def main() -> Any:
        try:
            await _probe(store)
            runner = await executor() if _inspect.iscoroutinefunction(executor) else executor
            header()
            if progress:
                progress.start()
                started.append(True)
            outcome: dict[str, Any] = {}

            async def execute() -> None:
                try:
                    outcome["record"] = await runner.run()
                except Exception as exc:  # re-raised below, outside the nursery's group
                    outcome["error"] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, runner, received)
                await execute()
                nursery.cancel_scope.cancel()
            if "error" in outcome:
                raise outcome["error"]
            return outcome["record"]
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()

    try:
        record = trio.run(main)
    finally:
        if started:
            progress.stop()
    if fmt == "json":
        click.echo(dumps_pretty_bytes(record.to_json()))  # encoded once, one write
    else:
        from ironflow_core.cli.output import echo_run_result

        echo_run_result(record, definition, verbose)
    if str(record.status) != "success":
        code = 1
        if received:
            import signal

            code = EXIT_SIGINT if received[0] == signal.SIGINT else EXIT_SIGTERM
        fail(f"Workflow run {record.id} finished with status {record.status}", code=code)


async def _cancel_on_signal(executor: Any, received: list[int]) -> None:
    """SIGINT/SIGTERM cancel the run cleanly; the exit code then says which (130/143)."""
    import signal

    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            received.append(signum)
            executor.cancel()
            return


def _progress(definition: Any, fmt: str) -> Any:
    from ironflow_core.settings import PROGRESS

    if fmt != "text" or not PROGRESS.read(os.environ):
        return None
    from ironflow_core.cli.progress import LiveProgress, PlainProgress

    if sys.stdout.isatty():
        return LiveProgress([s.name for s in definition.steps])
    return PlainProgress()


def _config_int(config: dict, key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@click.command()
@click.argument("flow", type=click.Path())
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@global_options
@handle_errors
def validate(flow: str, strict: bool) -> None:
    """Check a flow without running it."""
    from ironflow_core.validation import UNKNOWN_CONFIG_KEY, validate_definition

    st = state()
    st.prepare()
    definition = _load(flow, analyze=True)
    report = validate_definition(definition, st.registry)
    click.echo(f"Flow: {definition.name}")
    click.echo(f"Steps: {len(definition.steps)}")
    warnings = report.warnings
    if warnings:
        click.echo("Warnings:")
        for w in warnings:
            source = w.step and w.code != UNKNOWN_CONFIG_KEY
            where = f"{flow}:step[{w.step}].source" if source else flow
            click.echo(f"  {where}:{w.line or 0}:{w.column or 0} [{w.code}] {w.message}")
    if not report.failed(strict=strict):
        click.echo("Validation: OK")
        click.echo()
        lines = ["Execution order:"]  # one write, however many steps
        for step in definition.steps:
            if step.dependencies:
                lines.append(f"  {step.name} [{step.node_type}] depends on: "
                             + ", ".join(step.dependencies))
            else:
                lines.append(f"  {step.name} [{step.node_type}] (no dependencies)")
        click.echo("\n".join(lines))
        return
    click.echo("Validation: FAILED")
    for error in report.errors:
        click.echo(f"  - {error}")
    if strict and warnings:
        click.echo(f"  - strict validation rejected {len(warnings)} warning(s)")
    fail(f"{len(report.errors)} validation error(s) and {len(warnings) if strict else 0} "
         "strict warning(s) found")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@global_options
@handle_errors
def nodes(fmt: str) -> None:
    """List the registered node types."""
    registry = state().registry
    if fmt == "json":
        click.echo(json.dumps([
            {"name": name, "plugin": registry.node_providers.get(name, ""),
             "description": spec.summary}
            for name, spec in sorted(registry.nodes.items())
        ], indent=2, ensure_ascii=False))
        return
    click.echo(f"{'NODE TYPE':<20} DESCRIPTION")
    click.echo("-" * 60)
    for name, spec in sorted(registry.nodes.items()):
        click.echo(f"{name:<20} {spec.summary}")
    click.echo()
    click.echo(f"Total: {len(registry.nodes)} node(s)")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@global_options
@handle_errors
def plugins(fmt: str) -> None:
    """List plugins: where they come from, what they provide, and their status."""
    registry = state().registry
    records = registry.plugins
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False))
        return
    click.echo(f"{'PLUGIN':<16} {'DISTRIBUTION':<24} {'VERSION':<9} {'STATUS':<9} PROVIDES")
    click.echo("-" * 92)
    for r in records:
        provides = ", ".join(r.provides) if r.provides else "-"
        click.echo(f"{r.name:<16} {r.distribution:<24} {r.version:<9} {r.status:<9} {provides}")
        if r.error:
            click.echo(f"{'':<16} error: {r.error}")


@click.command(name="list")
@click.option("-s", "--status", type=click.Choice(RUN_STATUS_NAMES), metavar="S",
              help="Only runs with this status.")
@click.option("--store-dir", metavar="DIR")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--limit", type=int, metavar="N")
@click.option("--after", metavar="CURSOR")
@global_options
@handle_errors
def list_runs(status: str | None, store_dir: str | None, fmt: str, limit: int | None,
              after: str | None) -> None:
    """List stored runs, newest first, a page at a time."""
    import trio

    from ironflow_core.model import RunStatus
    from ironflow_core.settings import MAX_LIST_RECORDS
    from ironflow_core.stores.cursor import decode_cursor

    st = state()
    st.prepare()
    try:
        cap: int = MAX_LIST_RECORDS.read(os.environ)
    except ConfigError as exc:
        fail(str(exc))
    if limit is None:
        limit = cap
    if limit <= 0:
        usage_error("--limit must be greater than zero")
    if limit > cap:
        fail(f"requested list limit {limit} exceeds IRONFLOW_MAX_LIST_RECORDS ({cap})")
    status_filter = RunStatus(status) if status else None
    if after is not None:
        decode_cursor(after, status_filter)
    store = _open_store(store_dir)

    async def main() -> Any:
        try:
            page = await store.list_runs(status=status_filter, limit=limit, after=after)
            return page, await _owners_gone(store, page.runs)
        finally:
            await store.aclose()

    page, gone = trio.run(main)
    for line in getattr(store, "skipped", ()):
        click.echo(f"Warning: skipped JSON store entry {line}", err=True)
    if fmt == "json":
        click.echo(json.dumps({
            "runs": [_with_owner(r.to_json(), gone.get(r.id)) for r in page.runs],
            "limit": limit,
            "returned": len(page.runs),
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        }, indent=2, ensure_ascii=False))
        return
    from ironflow_core.cli.output import echo_run_table

    count = echo_run_table(page.runs)
    for run_id, note in gone.items():
        click.echo(f"Note: run {run_id} is not running any more: {note}")
    if count:
        click.echo()
        click.echo(f"Returned: {count} run(s) (page limit: {limit})")
    if page.next_cursor:
        hint = f"--status {status} --after" if status else "--after"
        click.echo(f"More runs are available. Continue with {hint} {page.next_cursor}")


@click.command()
@click.argument("run_id")
@click.option("--store-dir", metavar="DIR")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="json",
              show_default=True)
@click.option("--flow", "show_flow", is_flag=True,
              help="Also show the flow source the run recorded.")
@global_options
@handle_errors
def inspect(run_id: str, store_dir: str | None, fmt: str, show_flow: bool) -> None:
    """Print a stored run record as JSON (``--flow``: with the flow it ran)."""
    import trio

    from ironflow_core.jsonutil import dumps_pretty
    from ironflow_core.runid import validate_run_id

    state().prepare()
    validate_run_id(run_id)
    store = _open_store(store_dir)

    async def main() -> Any:
        try:
            record = await store.get_run(run_id)
            gone = await _owners_gone(store, [record])
            flow = None
            if show_flow:
                origin = await store.get_origin(run_id)
                if origin is not None and origin.flow is not None:
                    flow = await store.load_flow(origin.flow)
            return record, gone.get(run_id), flow
        finally:
            await store.aclose()

    record, gone, flow = trio.run(main)
    if show_flow and flow is None:
        fail(f"Run '{run_id}' has no stored flow (it was recorded by an older version, or "
             "its flow was built in code)")
    data = _with_owner(record.to_json(), gone)
    if isinstance(data.get("ctx"), dict):
        data["ctx"].pop("_headers", None)
    if show_flow:
        data["flow"] = flow.to_json()
    if fmt == "json":
        click.echo(dumps_pretty(data))
        return
    from ironflow_core.cli.output import echo_run_result

    echo_run_result(record, None, True)
    if gone:
        click.echo(f"\nOwner gone: {gone}")
    if show_flow:
        click.echo(f"\nFlow ({flow.file_name or 'inline source'}, {flow.loader}, "
                   f"sha256 {flow.digest}):")
        click.echo(flow.source.rstrip("\n"))


async def _owners_gone(store: Any, runs: Any) -> dict[str, str]:
    """Issue 14: unfinished runs whose execution owner is gone (its lease expired).

    Such a run is stalled as soon as someone reconciles it (``ironflow serve``);
    until then the listing says what it is instead of calling it running.
    """
    from ironflow_core.engine.lease import describe_expiry
    from ironflow_core.stores.leases import clock_micros

    gone = {}
    for run in runs:
        if str(run.status) not in ("pending", "running"):
            continue
        lease = await store.get_lease(run.id)
        if lease is None:
            if str(run.status) == "running":
                gone[run.id] = ("no process holds its lease; it is stalled once reconciled "
                                f"(`ironflow serve`), or continue it with `ironflow resume {run.id}`")
        elif lease.expires_micros <= clock_micros():
            gone[run.id] = (f"owner gone, its lease expired at "
                            f"{describe_expiry(lease.expires_micros).split(' ')[0]}; it is "
                            "stalled once reconciled (`ironflow serve`), or continue it with "
                            f"`ironflow resume {run.id}`")
    return gone


def _with_owner(data: dict, gone: str | None) -> dict:
    if gone is not None:
        data["owner_gone"] = True
    return data


@click.command()
@click.argument("run_id")
@click.option("--flow", "flow_path", type=click.Path(dir_okay=False),
              help="Run this flow file instead of the flow stored with the run (same name).")
@click.option("--as-new", is_flag=True,
              help="Copy the run into a new run instead of continuing it in place.")
@click.option("-v", "--verbose", is_flag=True)
@click.option("--store-dir", metavar="DIR")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@global_options
@handle_errors
def resume(run_id: str, flow_path: str | None, as_new: bool, verbose: bool,
           store_dir: str | None, fmt: str) -> None:
    """Continue an interrupted or failed run in place; recorded completions are not run again."""
    import trio

    from ironflow_core.engine import open_resume
    from ironflow_core.engine.resume import stored_flow
    from ironflow_core.runid import validate_run_id

    st = state()
    st.prepare()
    validate_run_id(run_id)
    if flow_path is not None:
        definition = _load(flow_path)
    else:
        async def load_stored() -> Any:
            store = _open_store(store_dir)
            try:
                origin = await store.get_origin(run_id)
                return await stored_flow(store, run_id, origin, registry=st.registry,
                                         env=os.environ)
            finally:
                await store.aclose()

        definition = trio.run(load_stored)
    store = _open_store(store_dir)

    def header() -> None:
        if fmt == "text":
            from ironflow_core.cli.output import echo_flow_header

            echo_flow_header(definition, verbose)
            click.echo(f"Resuming: {run_id}" + (" as a new run" if as_new else ""))

    progress = _progress(definition, fmt)

    async def prepare() -> Any:
        return await open_resume(
            store, run_id, registry=st.registry, env=os.environ, flow=definition,
            as_new=as_new, observers=[progress] if progress else (),
            config_concurrency=_config_int(st.config, "max_concurrent_tasks"),
        )

    _execute_and_report(prepare, store, progress, definition, fmt, verbose, header)
