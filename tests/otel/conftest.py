"""An in-memory span exporter installed as the process's tracer provider.

This is what an application embedding IronFlow does: it installs a provider
globally, and ironflow-otel (registered through its entry point) uses it.
A global provider can be set once per process, so it stays for the session;
its sampler records only while a test holds the ``spans`` fixture, so the
rest of the suite's runs cost no spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

_state: dict[str, Any] = {}


def _install() -> tuple[Any, Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class Switch(Sampler):
        active = False

        def should_sample(self, parent_context: Any, trace_id: Any, name: Any, kind: Any = None,
                          attributes: Any = None, *args: Any, **kwargs: Any) -> SamplingResult:
            if not self.active:
                return SamplingResult(Decision.DROP)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return "test switch"

    switch = Switch()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=switch)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter, switch


@pytest.fixture
def spans() -> Iterator[Any]:
    if not _state:
        _state["exporter"], _state["switch"] = _install()
    exporter, switch = _state["exporter"], _state["switch"]
    exporter.clear()
    switch.active = True
    try:
        yield exporter
    finally:
        switch.active = False
        exporter.clear()
