"""``ironflow serve``: the REST API (CONTRACT §6.8, §7).

Settings are resolved and validated before anything is bound, so a bad
setting exits 1 with ``Error: ...`` and never leaves a half-started server.
Starlette and Hypercorn are imported only here, when the command runs.
"""

from __future__ import annotations

import os

import click

from ironflow_core.cli.app import cli, global_options, handle_errors, state


@cli.command()
@click.option("--host", metavar="HOST", help="Address to bind (default 0.0.0.0).")
@click.option("-p", "--port", type=click.IntRange(0, 65535), metavar="PORT",
              help="Port to listen on (default 3000; 0 picks a free port).")
@click.option("--store-dir", metavar="DIR", help="JSON store directory (default data/runs).")
@click.option("--flows-dir", metavar="DIR", help="Root for 'file' flows and webhook flows.")
@click.option("--max-body", type=click.IntRange(1), metavar="BYTES",
              help="Request body limit in bytes (default 1048576).")
@global_options
@handle_errors
def serve(host: str | None, port: int | None, store_dir: str | None, flows_dir: str | None,
          max_body: int | None) -> None:
    """Serve the REST API until SIGINT/SIGTERM, then drain running flows."""
    from ironflow_core.api.server import run_server
    from ironflow_core.api.settings import resolve_settings
    from ironflow_core.queues.select import open_queue
    from ironflow_core.stores.select import open_store

    st = state()
    st.prepare()
    settings = resolve_settings(os.environ, st.config, host=host, port=port,
                                flows_dir=flows_dir, max_body=max_body)
    run_server(
        settings,
        open_store=lambda: open_store(st.registry, os.environ, store_dir=store_dir,
                                      config=st.config),
        registry=st.registry,
        env=os.environ,
        open_queue=lambda: open_queue(st.registry, os.environ, st.config),
    )
