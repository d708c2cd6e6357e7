"""``ironflow submit``, ``ironflow worker`` and ``ironflow workers``: runs through a shared queue.

Each checks the queue setting first: with the
default ``inline`` queue there are no workers, and the error says what to set.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ironflow_core.cli.shared import fail, global_options, handle_errors, state

NEEDS_SHARED_QUEUE = (
    "{command} needs a shared queue: set IRONFLOW_QUEUE=redis (and IRONFLOW_STORE=redis); "
    "with the inline queue the process that accepts a run executes it (use `ironflow run`)"
)


def _open_store_and_queue(command: str, store_dir: str | None) -> tuple[Any, Any]:
    from ironflow_core.queues.select import open_queue
    from ironflow_core.stores.select import open_store

    st = state()
    queue = open_queue(st.registry, os.environ, st.config)
    if not queue.shared:
        fail(NEEDS_SHARED_QUEUE.format(command=command))
    store = open_store(st.registry, os.environ, store_dir=store_dir, config=st.config)
    return store, queue


@click.command()
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option("-c", "--context", "context", metavar="JSON", help="Initial context (a JSON object).")
@click.option("--context-file", metavar="PATH", help="Read the initial context from a JSON file.")
@click.option("--wait", is_flag=True, help="Wait for the run and exit like `ironflow run`.")
@click.option("-v", "--verbose", is_flag=True, help="With --wait: show steps and outputs.")
@click.option("--store-dir", metavar="DIR", hidden=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@global_options
@handle_errors
def submit(flow: str, context: str | None, context_file: str | None, wait: bool,
           verbose: bool, store_dir: str | None, fmt: str) -> None:
    """Record a run and queue it for `ironflow worker`; print its run ID."""
    import trio

    from ironflow_core.cli.commands import _config_int, _initial_context, _load
    from ironflow_core.engine import plan_flow, prepare_run
    from ironflow_core.jsonutil import dumps_pretty
    from ironflow_core.queues.submit import CompletionWaiters, submit_run

    st = state()
    st.prepare()
    definition = _load(flow)
    initial = _initial_context(context, context_file, flow)
    store, queue = _open_store_and_queue("ironflow submit", store_dir)
    executor = prepare_run(  # plans the flow: a flow that cannot run is refused here
        plan_flow(definition, st.registry), store=store, registry=st.registry, context=initial,
        env=os.environ, config_concurrency=_config_int(st.config, "max_concurrent_tasks"),
    )

    async def main() -> Any:
        try:
            if not wait:
                return await submit_run(executor, queue)
            waiters = CompletionWaiters(store)
            async with trio.open_nursery() as nursery:
                await nursery.start(lambda task_status: queue.follow(
                    waiters.sink, task_status=task_status))
                record = await submit_run(executor, queue)
                if fmt == "text":
                    click.echo(f"Submitted run {record.id}", err=True)
                final = await waiters.wait(record.id)
                nursery.cancel_scope.cancel()
            return final
        finally:
            with trio.CancelScope(shield=True):
                await queue.aclose()
                await store.aclose()

    record = trio.run(main)
    if not wait:
        click.echo(dumps_pretty({"run_id": record.id}) if fmt == "json" else record.id)
        return
    if fmt == "json":
        click.echo(dumps_pretty(record.to_json()))
    else:
        from ironflow_core.cli.output import echo_run_result

        echo_run_result(record, definition, verbose)
    if str(record.status) != "success":
        fail(f"Workflow run {record.id} finished with status {record.status}")


@click.command()
@click.option("--concurrency", type=click.IntRange(1), metavar="N",
              help="Runs executed at once (default 4).")
@click.option("--name", metavar="NAME", help="Consumer name (default HOST-PID); unique per worker.")
@click.option("--store-dir", metavar="DIR", hidden=True)
@global_options
@handle_errors
def worker(concurrency: int | None, name: str | None, store_dir: str | None) -> None:
    """Execute queued runs until SIGTERM/SIGINT, then drain and hand back the rest."""
    import trio

    from ironflow_core.cli.commands import _config_int
    from ironflow_core.queues.worker import Worker, WorkerSettings

    st = state()
    st.prepare()
    settings = WorkerSettings.from_env(os.environ, name=name, concurrency=concurrency)
    store, queue = _open_store_and_queue("ironflow worker", store_dir)
    runner = Worker(queue, store, registry=st.registry, env=os.environ, settings=settings,
                    config_concurrency=_config_int(st.config, "max_concurrent_tasks"))

    async def main() -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stop_on_signal, runner)
                await runner.serve()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await queue.aclose()
                await store.aclose()

    print(f"IronFlow worker {settings.name} started (concurrency {settings.concurrency}, "
          f"recovery {settings.recovery.mode})", file=sys.stderr, flush=True)
    trio.run(main)
    counts = ", ".join(f"{k} {v}" for k, v in runner.counts.items())
    print(f"IronFlow worker {settings.name} stopped ({counts})", file=sys.stderr, flush=True)


async def _stop_on_signal(runner: Any) -> None:
    """First signal: drain (grace period); second: hand back the rest at once."""
    import signal

    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if runner.stopping:
                runner.skip_grace()
            runner.stop()


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@global_options
@handle_errors
def workers(fmt: str) -> None:
    """List live workers and the queue's depth, pending count and dead letters."""
    import trio

    from ironflow_core.jsonutil import dumps_pretty
    from ironflow_core.queues.select import open_queue

    st = state()
    queue = open_queue(st.registry, os.environ, st.config)
    if not queue.shared:
        fail(NEEDS_SHARED_QUEUE.format(command="ironflow workers"))

    async def main() -> Any:
        try:
            return await queue.status()
        finally:
            await queue.aclose()

    status = trio.run(main)
    if fmt == "json":
        click.echo(dumps_pretty(status.to_json()))
        return
    click.echo(f"queue {status.name}: {status.depth} waiting, {status.pending} in hand, "
               f"{status.dead} dead letter(s); {len(status.workers)} live worker(s)")
    if status.workers:
        click.echo(f"{'NAME':<28} {'HOST':<20} {'PID':>7} {'RUNS':>5}  LAST HEARTBEAT")
        for info in status.workers:
            click.echo(f"{info.name:<28} {info.host:<20} {info.pid:>7} "
                       f"{len(info.runs):>2}/{info.concurrency:<2}  {info.heartbeat}")

