"""Which tracer provider to use, from the host application or the ``OTEL_*`` variables.

1. A provider the host application installed globally (it imported
   OpenTelemetry itself, e.g. ``opentelemetry-instrument`` or a test) is used
   as is.
2. Otherwise, when export is configured (``OTEL_TRACES_EXPORTER``,
   ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
   an SDK provider is built: resource from ``OTEL_SERVICE_NAME`` /
   ``OTEL_RESOURCE_ATTRIBUTES`` (service name ``ironflow`` by default),
   sampler from ``OTEL_TRACES_SAMPLER``, one batch processor per exporter in
   ``OTEL_TRACES_EXPORTER`` (``otlp`` over HTTP/protobuf by default,
   ``console``, ``none``), and installed as the global provider.
3. Otherwise tracing stays idle and OpenTelemetry is not even imported: an
   installed plugin never makes ``ironflow run`` wait at exit for a
   collector nobody configured.

``OTEL_SDK_DISABLED=true`` turns step 2 off.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("ironflow.otel")

EXPORT_SETTINGS = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)
DEFAULT_SERVICE_NAME = "ironflow"


def host_provider() -> Any | None:
    """The global provider, if the host application installed a real one."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    current = trace.get_tracer_provider()
    if isinstance(current, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return current


def export_configured(env: Mapping[str, str]) -> bool:
    """Whether OTEL_* variables ask for an exporter (and OTEL_SDK_DISABLED does not veto it)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name, "").strip() for name in EXPORT_SETTINGS)


def resolve_provider(env: Mapping[str, str]) -> Any | None:
    """The provider to trace with, or ``None`` while tracing is not configured."""
    provider = host_provider()
    if provider is not None:
        return provider
    if not export_configured(env):
        return None
    return build_provider(env)


def build_provider(env: Mapping[str, str]) -> Any:
    """An SDK tracer provider with the exporters OTEL_TRACES_EXPORTER names, installed as the global provider."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {}
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create(attributes))
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    for name in names:
        exporter = _exporter(name, env)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _exporter(name: str, env: Mapping[str, str]) -> Any | None:
    if name in ("", "none"):
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
        if protocol != "http/protobuf":
            log.warning("OTLP protocol '%s' is not shipped with ironflow-otel; exporting "
                        "over http/protobuf instead", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    log.warning("unknown OTEL_TRACES_EXPORTER '%s' ignored (use otlp, console or none)", name)
    return None
