"""``ironflow serve``: the REST API (semantics.md#serve, #api).

Settings are resolved and validated before anything is bound, so a bad
setting exits 1 with ``Error: ...`` and never leaves a half-started server.
Starlette and Hypercorn are imported only here, when the command runs; they
come with the ``serve`` extra (``pip install 'ironflow-core[serve]'``), and
without it the command says exactly that. The default address is 127.0.0.1:
listening on every interface is an explicit ``--host 0.0.0.0``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from ironflow_core.cli.shared import global_options, handle_errors, state
from ironflow_core.errors import ConfigError

if TYPE_CHECKING:
    from ironflow_core.registry import Registry


@click.command()
@click.option("--host", metavar="HOST", help="Address to bind (default 127.0.0.1; 0.0.0.0 for every interface).")
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
    require_serve_extra()
    from ironflow_core.api.server import run_server
    from ironflow_core.api.settings import resolve_settings
    from ironflow_core.queues.select import open_queue
    from ironflow_core.schedules.config import check_flow_loads
    from ironflow_core.stores.select import open_store

    st = state()
    st.prepare()
    settings = resolve_settings(os.environ, st.config, host=host, port=port,
                                flows_dir=flows_dir, max_body=max_body)
    registry = st.registry
    if settings.metrics_enabled:
        registry = with_metrics(os.environ)
    for schedule in settings.schedules:  # a flow that does not load stops us now, not at 02:00
        check_flow_loads(schedule, registry, os.environ)
    run_server(
        settings,
        open_store=lambda: open_store(registry, os.environ, store_dir=store_dir,
                                      config=st.config),
        registry=registry,
        env=os.environ,
        open_queue=lambda: open_queue(st.registry, os.environ, st.config),
    )


def with_metrics(env: Any) -> Registry:
    """The registry with the metrics observer registered as a plugin, like any observer."""
    from ironflow_core.metrics import METRICS_PLUGIN_NAME, MetricsObserver, MetricsPlugin
    from ironflow_core.registry import build_registry

    plugin = MetricsPlugin(MetricsObserver())
    return build_registry(env, extra=[(METRICS_PLUGIN_NAME, plugin)])


SERVE_PACKAGES = ("starlette", "hypercorn")
SERVE_INSTALL = "pip install 'ironflow-core[serve]'"


def require_serve_extra() -> None:
    """Fail with the install command when the API packages are missing."""
    import importlib.util

    missing = [name for name in SERVE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"'ironflow serve' needs {' and '.join(missing)}, which are not installed. "
            f"Install them with: {SERVE_INSTALL}"
        )
