"""Entry point of ironflow-otel (group ``ironflow``, name ``otel``): one observer, one header provider."""

from __future__ import annotations

from ironflow_core import HeaderSpec, hookimpl
from ironflow_otel.tracing import TracingObserver

TRACING = TracingObserver()
"""The process's tracing observer: it keeps the open spans the header provider reads."""


@hookimpl
def ironflow_register_observers() -> list[TracingObserver]:
    return [TRACING]


@hookimpl
def ironflow_register_outgoing_headers() -> list[HeaderSpec]:
    return [HeaderSpec(name="trace-context", headers=TRACING.outgoing_headers)]
