"""OpenTelemetry tracing for IronFlow, registered through the ``ironflow`` entry point.

A span per run and per task attempt (``tracing.TracingObserver``), the
step's trace context on outgoing HTTP requests (``traceparent``), export set
up from the standard ``OTEL_*`` variables (``provider.py``). Nothing of
OpenTelemetry is imported until a run starts with tracing configured.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ironflow_otel.tracing import TracingObserver

__all__ = ["TracingObserver", "__version__"]
