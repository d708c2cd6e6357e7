"""Entry point of ironflow-otel (group ``ironflow``, name ``otel``): one observer, one header provider.

Both are registered only when tracing is configured (a host application
installed a tracer provider, or ``OTEL_*`` export variables are set; see
``provider.py``) when the registry is built. Otherwise the engine has no
listener to build events for, and runs cost exactly what they cost without
the plugin.
"""

from __future__ import annotations

import os

from ironflow_core import HeaderSpec, hookimpl
from ironflow_otel.provider import export_configured, host_provider
from ironflow_otel.tracing import TracingObserver

TRACING = TracingObserver()
"""The process's tracing observer: it keeps the open spans the header provider reads."""


def tracing_configured() -> bool:
    """Whether to trace at all: a host tracer provider or OTEL_* export settings, read when the registry is built."""
    return host_provider() is not None or export_configured(os.environ)


@hookimpl
def ironflow_register_observers() -> list[TracingObserver]:
    """The tracing observer, only when tracing is configured, so untraced runs build no events for it."""
    return [TRACING] if tracing_configured() else []


@hookimpl
def ironflow_register_outgoing_headers() -> list[HeaderSpec]:
    """The traceparent header provider for HTTP nodes, only when tracing is configured."""
    if not tracing_configured():
        return []
    return [HeaderSpec(name="trace-context", headers=TRACING.outgoing_headers)]
